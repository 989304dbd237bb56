"""The model store: immutable model versions per symbol, a ``latest`` pointer, and a
KServe/Triton model repository view.

Layout under the store URI::

    models/<SYMBOL>/<version>/model.onnx, scaler.pkl, scaler.json, metrics.json,
                              history.json, model_card.json, *.png
    models/<SYMBOL>/<version>/manifest.json     written last: a version exists once it has one
    models/<SYMBOL>/latest.json                 pointer to the serving version (accepted only)
    shared/<version>/model.onnx, model.keras, scaler.*, model_card.json, ..., manifest.json
                                                a universal model, stored once for every symbol
    triton/<model_name>/config.pbtxt            Triton config, pinned to latest's Triton version
    triton/<model_name>/<n>/model.onnx          Triton versions 1, 2, 3... (numbers never reused)

An ONNX ``InferenceService`` points its ``storageUri`` at ``<store>/triton``; the URL model name
is the folder name (``btceur-close``). The config is written explicitly rather than relying on
Triton's auto-complete, so the served signature is pinned and visible.

Publishing is atomic from a reader's point of view: every object of a version is uploaded and
verified (read back: size and SHA-256) before ``manifest.json``, then the small ``latest.json``
pointer (one PUT), and only then the Triton view follows the pointer: the copy of the model,
then ``config.pbtxt`` pinned to that one version (``version_policy: specific``). Whatever step
a ``kill -9`` interrupts, Triton serves a version ``latest`` points or pointed to, never one the
gate and the pointer did not choose; the next publish repairs the view
(:meth:`ModelStore.sync_triton`). The pointer also lists the versions promoted before it
(``promoted``), so a version whose publish died before the pointer is listed as
``incomplete``, not ``accepted``. A model that failed the promotion gate is stored with status
``rejected`` and never becomes ``latest`` nor reaches the Triton view; so is, unless allowed, a
model whose serving contract (recorded in the pointer) would break the clients of ``latest``.

A *universal* model (issue 21: one model for many symbols) is published per symbol with its
model folder (``publish(..., shared_model=DIR)``): the model's files are stored once, under
``shared/<version>/`` (named after the model's training time and SHA-256), and each symbol's
version holds its own evaluation only (metrics, predictions, its model card, charts); its
manifest marks the files it shares (``files[name]["shared"]``), its pointer names the shared
version (``shared``). A symbol version's name ends in the first 8 hex of its model's SHA-256,
like the shared version it uses: a shared version is removed only when no symbol version (kept,
rejected or debris) of any symbol ends so, and it is stale. A symbol's files are written before
the shared ones, so a publish claims its shared version before it reads or writes it. The Triton
view holds such a model once, as the model ``universal`` (:data:`UNIVERSAL_MODEL`), its
versions numbered by the training time, pinned to those the symbols' pointers name.

Debris of interrupted publishes (versions without a manifest or never promoted, stale ``.part``
files of the local backend) never counts for retention and is removed by a later publish once
older than ``stale_after`` seconds (a younger one may be a publish still running).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from make_us_rich import contract
from make_us_rich.data import normalize_symbol
from make_us_rich.errors import ConfigError, MakeUsRichError
from make_us_rich.io import json_bytes
from make_us_rich.store.backends import Backend, ObjectNotFound, StoreError, open_backend

#: Files a published version must contain (what ``mkrich train --out`` writes).
REQUIRED_FILES = contract.REQUIRED_FILES
OPTIONAL_FILES = contract.OPTIONAL_FILES
DEFAULT_KEEP = contract.DEFAULT_KEEP
DEFAULT_STALE_AFTER = 3600.0
#: ``<UTC publish time to the microsecond>-<first 8 hex of the model's SHA-256>``: unique,
#: sortable, and telling which model it holds, e.g. ``20231231T230512.123456Z-5de49751``.
_VERSION_RE = contract.VERSION_RE
#: What the shared version of a universal model holds: stored name -> path in its model folder
#: (``mkrich train --symbols ... --out DIR``, the pipeline's training task).
SHARED_SOURCES: dict[str, str] = {
    "model.onnx": "model.onnx", "model.keras": "model.keras", "scaler.pkl": "scaler/scaler.pkl",
    "scaler.json": "scaler/scaler.json", "history.json": "history.json", "training.json": "training.json",
    "parity.json": "parity.json", "config.json": "config.json", "universal.json": "universal.json",
    "model_card.json": "model_card.json",
}
#: Triton model name of the universal model (never a symbol's: those end in ``-close``).
UNIVERSAL_MODEL = "universal"


class PublishError(MakeUsRichError, RuntimeError):
    """Publishing failed; the previous ``latest`` is untouched."""


class MalformedPointer(StoreError):
    """``latest.json`` exists but cannot be used (hand-edited, truncated, foreign)."""


@dataclass
class PublishResult:
    symbol: str
    version: str
    status: str  # "accepted" | "rejected"
    latest: bool  # whether latest.json now points at this version
    triton_version: int | None
    uri: str
    reasons: list[str]
    removed_versions: list[str]
    contract_changes: list[str] = field(default_factory=list)  # promoted although they break clients
    shared: str | None = None  # the shared (universal) model version it uses


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _version_time(version: str) -> float:
    return datetime.strptime(version[:23], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC).timestamp()


def check_pointer(pointer: Any, symbol: str, where: str) -> dict[str, Any]:
    """A ``latest.json`` as the server and the CLI need it (read as :class:`contract.Pointer`),
    or :class:`StoreError` saying what is wrong with it (read from ``where``) and how to repair it."""
    try:
        record = contract.Pointer.of(pointer)
        if record.symbol != symbol:
            raise ValueError(f"'symbol' is {record.symbol!r}, not {symbol!r}")
    except ValueError as exc:
        raise MalformedPointer(f"{where} is malformed: {exc}; publish a model again (mkrich publish) to "
                               "rewrite it") from None
    return pointer


def triton_config(model_name: str, sequence_length: int, n_features: int, version: int | None = None,
                  n_horizons: int = 0) -> str:
    """Triton ``config.pbtxt`` for the ONNX forecaster (tensors from the contract); with
    ``version``, Triton serves that version only, whatever other folders exist."""
    policy = f"specific: {{ versions: [ {version} ] }}" if version else "latest: { num_versions: 1 }"
    return contract.triton_config(model_name, sequence_length, n_features, f"{{ {policy} }}", n_horizons)


class ModelStore:
    """Publish and read models. ``ModelStore("runs/store")``, ``ModelStore("s3://models/mkrich")``."""

    def __init__(
        self, uri: str | Path | Backend, keep: int = DEFAULT_KEEP, stale_after: float = DEFAULT_STALE_AFTER
    ) -> None:
        self.backend: Backend = uri if hasattr(uri, "put") else open_backend(uri)  # type: ignore[arg-type]
        if keep < 1:
            raise ConfigError(f"keep must be >= 1 (versions to retain), got {keep}")
        self.keep = keep
        self.stale_after = stale_after

    @property
    def uri(self) -> str:
        return self.backend.uri

    @property
    def triton_uri(self) -> str:
        """What an ONNX InferenceService's ``storageUri`` should be."""
        return f"{self.uri}/triton"

    # ------------------------------------------------------------------ keys
    @staticmethod
    def _sym(symbol: str) -> str:
        return normalize_symbol(symbol)  # ^[A-Z0-9]{5,20}$: safe as a key component

    def _version_key(self, symbol: str, version: str, name: str = "") -> str:
        if not _VERSION_RE.match(version):
            raise ConfigError(f"invalid model version {version!r}")
        return f"models/{self._sym(symbol)}/{version}" + (f"/{name}" if name else "")

    def _latest_key(self, symbol: str) -> str:
        return f"models/{self._sym(symbol)}/latest.json"

    @staticmethod
    def _shared_key(version: str, name: str = "") -> str:
        if not _VERSION_RE.match(version):
            raise ConfigError(f"invalid shared model version {version!r}")
        return f"shared/{version}" + (f"/{name}" if name else "")

    # ------------------------------------------------------------------ reading
    def latest(self, symbol: str) -> dict[str, Any] | None:
        """The ``latest.json`` pointer of ``symbol``, or ``None`` before the first accepted model;
        :class:`StoreError` when it is malformed."""
        key = self._latest_key(symbol)
        try:
            raw = self.backend.get(key)
        except ObjectNotFound:
            return None
        where = f"{self.uri}/{key}"
        try:
            pointer = json.loads(raw)
        except ValueError as exc:
            raise MalformedPointer(f"{where} is not valid JSON ({exc}); publish a model again (mkrich publish) to rewrite it") from None
        return check_pointer(pointer, self._sym(symbol), where)

    def pointer(self, symbol: str) -> contract.Pointer | None:
        """:meth:`latest`, typed."""
        pointer = self.latest(symbol)
        return None if pointer is None else contract.Pointer.of(pointer)

    def _latest_or_none(self, symbol: str) -> dict[str, Any] | None:
        """The pointer for publishing: a malformed one is replaced, not an obstacle."""
        try:
            return self.latest(symbol)
        except MalformedPointer:
            return None

    def symbols(self) -> list[str]:
        """Symbols that have a ``latest`` (an accepted model to serve)."""
        return sorted(
            parts[1] for k in self.backend.list("models")
            if len(parts := k.split("/")) == 3 and parts[2] == "latest.json"
        )

    def manifest(self, symbol: str, version: str) -> dict[str, Any]:
        """A version's ``manifest.json`` as stored; :class:`StoreError` when it is not a JSON object."""
        key = self._version_key(symbol, version, "manifest.json")
        try:
            manifest = json.loads(self.backend.get(key))
        except ValueError as exc:
            raise StoreError(f"{self.uri}/{key} is malformed: {exc}") from None
        if not isinstance(manifest, dict):
            raise StoreError(f"{self.uri}/{key} is malformed: not a JSON object")
        return manifest

    def _by_version(self, symbol: str) -> dict[str, list[str]]:
        by_version: dict[str, list[str]] = {}
        for k in self.backend.list(f"models/{self._sym(symbol)}"):
            parts = k.split("/")
            if len(parts) >= 4 and _VERSION_RE.match(parts[2]):
                by_version.setdefault(parts[2], []).append(k)
        return by_version

    def versions(self, symbol: str) -> list[dict[str, Any]]:
        """Versions with a manifest, oldest first. An accepted version that never became latest
        (its publish was interrupted before the pointer) has status ``incomplete``."""
        pointer = self._latest_or_none(symbol)
        found = sorted(v for v, keys in self._by_version(symbol).items() if self._has_manifest(symbol, v, keys))
        manifests = [self.manifest(symbol, v) for v in found]
        for m in manifests:
            if m.get("status") == "accepted" and not _promoted(str(m.get("version")), pointer):
                m["status"] = "incomplete"
        return manifests

    def manifests(self, symbol: str) -> list[contract.Manifest]:
        """:meth:`versions`, typed; a manifest that does not read is a :class:`StoreError`
        naming it."""
        records = []
        for m in self.versions(symbol):
            try:
                records.append(contract.Manifest.of(m))
            except ValueError as exc:
                where = f"{self.uri}/{self._version_key(symbol, str(m.get('version')), 'manifest.json')}"
                raise StoreError(f"{where} is malformed: {exc}") from None
        return records

    def _has_manifest(self, symbol: str, version: str, keys: list[str]) -> bool:
        return self._version_key(symbol, version, "manifest.json") in keys

    def read(self, symbol: str, version: str, name: str, sha256: str | None = None, *,
             shared: str | None = None) -> bytes:
        """One artifact of a version, checked against ``sha256`` when given. A file the version
        shares with other symbols (a universal model's) is read from its shared version:
        ``shared`` names it (a pointer's ``shared`` for its ``shared_files``), else the
        version's manifest says so."""
        if shared is not None:
            return self.read_shared(shared, name, sha256)
        try:
            data = self.backend.get(self._version_key(symbol, version, name))
        except ObjectNotFound:
            info = self.manifest(symbol, version)["files"].get(name) or {}
            if not info.get("shared"):
                raise
            return self.read_shared(info["shared"], name, sha256)
        if sha256 is not None and _sha256(data) != sha256:
            raise StoreError(f"{symbol} {version}/{name}: checksum mismatch (corrupt or replaced object)")
        return data

    def read_shared(self, version: str, name: str, sha256: str | None = None) -> bytes:
        """One file of a shared (universal) model version, checked against ``sha256`` when given."""
        data = self.backend.get(self._shared_key(version, name))
        if sha256 is not None and _sha256(data) != sha256:
            raise StoreError(f"shared {version}/{name}: checksum mismatch (corrupt or replaced object)")
        return data

    def fetch(self, symbol: str, dest: str | Path, version: str | None = None) -> Path:
        """Download a version (default: latest) into ``dest``, verifying every checksum."""
        if version is None:
            pointer = self.latest(symbol)
            if pointer is None:
                raise StoreError(f"no accepted model for {self._sym(symbol)} in {self.uri} yet")
            version = pointer["version"]
        manifest = self.manifest(symbol, version)
        out = Path(dest)
        out.mkdir(parents=True, exist_ok=True)
        for name, info in manifest["files"].items():
            (out / name).write_bytes(self.read(symbol, version, name, info["sha256"], shared=info.get("shared")))
        return out

    def shared_manifest(self, version: str) -> dict[str, Any]:
        """The manifest of a shared (universal) model version."""
        return json.loads(self.backend.get(self._shared_key(version, "manifest.json")))

    def shared_versions(self) -> list[str]:
        """Shared model versions with a manifest, oldest first."""
        return sorted(
            parts[1] for k in self.backend.list("shared")
            if len(parts := k.split("/")) == 3 and parts[2] == "manifest.json" and _VERSION_RE.match(parts[1])
        )

    # ------------------------------------------------------------------ publishing
    def _put_verified(self, key: str, data: bytes) -> dict[str, Any]:
        self.backend.put(key, data)
        back = self.backend.get(key)
        if len(back) != len(data) or _sha256(back) != _sha256(data):
            raise PublishError(f"verification of {self.uri}/{key} failed: stored object differs")
        return {"sha256": _sha256(data), "size": len(data)}

    def publish(self, artifacts: str | Path, symbol: str, allow_contract_change: bool = False, *,
                shared_model: str | Path | None = None, sync: bool = True) -> PublishResult:
        """Publish the artifacts of ``mkrich train --out DIR`` as a new version of ``symbol``.

        The promotion gate's decision is read from ``metrics.json``: accepted models become
        ``latest`` and reach the Triton view; rejected ones are stored as rejected only. The
        gate also refuses a model whose serving contract breaks the clients of the current
        ``latest`` (:func:`~make_us_rich.contract.contract_changes`: another input shape,
        features, quantiles, an output removed), unless ``allow_contract_change``.

        ``shared_model``: the folder of the universal model the artifacts were evaluated from;
        its files are stored once (``shared/<version>/``, reused by every symbol's publish) and
        the symbol's version keeps only what is its own. ``sync=False`` leaves the removal of
        unused shared versions and the Triton view to a later :meth:`sync` (a batch of symbols
        does it once).
        """
        sym = self._sym(symbol)
        files = _read_artifacts(Path(artifacts), sym)
        card = json.loads(files["model_card.json"])
        metrics = json.loads(files["metrics.json"])
        gate = metrics.get("gate") or {}
        accepted = bool(gate.get("passed"))
        serving = contract.serving_contract(card["sequence_length"], card["features"], outputs=card.get("outputs"))
        checksums = {name: _sha256(data) for name, data in files.items()}
        shared = _read_shared_model(Path(shared_model), checksums) if shared_model is not None else None
        refs = {} if shared is None else {
            n: shared["version"] for n, data in shared["files"].items() if checksums.get(n) == _sha256(data)
        }
        # a model of several horizons (issue 22): its rows' order, and those its per-horizon gate
        # let through (none recorded: the next hour only), for the server's answer
        horizons = {"horizon_axis": list(card["horizons"]), "horizons": list(gate.get("served_horizons", [1]))
                    } if card.get("horizons") else {}
        if horizons and accepted:  # a pointer every reader would refuse must not replace a good one
            try:
                contract.served_horizons(horizons)
            except ValueError as exc:
                raise PublishError(f"cannot publish {sym} from {artifacts}: its model card's horizons and its gate's "
                                   f"served horizons do not fit together ({exc}); evaluate the model again") from None
        created = datetime.now(UTC)
        version = f"{created.strftime('%Y%m%dT%H%M%S.%fZ')}-{checksums['model.onnx'][:8]}"
        model_name = contract.model_name(sym)

        written: list[str] = []  # what to take back if a later step fails

        def put(key: str, data: bytes) -> dict[str, Any]:
            info = self._put_verified(key, data)
            written.append(key)
            return info

        try:
            if self.backend.list(self._version_key(sym, version)):
                raise PublishError(f"version {version} already exists; versions are immutable")
            previous = self._latest_or_none(sym)
            changes = contract.contract_changes(contract.contract_of(previous), serving) if previous else []
            if changes and accepted and not allow_contract_change:
                accepted = False
                gate = {**gate, "passed": False, "reasons": [*gate.get("reasons", []), (
                    f"serving contract differs from latest {previous['version']} ({'; '.join(changes)}): "
                    "its clients would break; publish with --allow-contract-change (pipeline: "
                    "allow_contract_change=true) to promote it, then restart the servers (docs/serving.md)")]}
            # the symbol's own files first: they claim the shared version (by its SHA-256 prefix,
            # see prune_shared) before it is read or written
            uploaded = {
                name: self._put_verified(self._version_key(sym, version, name), data)
                for name, data in files.items() if name not in refs
            }
            if shared is not None:
                shared_manifest = self._ensure_shared(shared)
                uploaded.update({n: {**shared_manifest["files"][n], "shared": shared["version"]} for n in refs})
                triton_version = shared_manifest["triton_version"] if accepted else None
            else:
                triton_version = self._next_triton_version(sym, model_name) if accepted else None
            manifest = {
                "symbol": sym,
                "version": version,
                "status": "accepted" if accepted else "rejected",
                "gate": gate,
                "published": created.isoformat(timespec="seconds"),
                "model_name": model_name,
                "triton_version": triton_version,
                **({"shared": shared["version"], "triton_model": UNIVERSAL_MODEL} if shared else {}),
                "sequence_length": card["sequence_length"],
                "features": card["features"],
                "contract": serving,
                "contract_changes": changes,
                "metrics": metrics.get("test"),
                "files": dict(sorted(uploaded.items())),
                **horizons,
            }
            put(self._version_key(sym, version, "manifest.json"), json_bytes(manifest))
            if shared is not None:  # a prune elsewhere may have taken a stale copy away meanwhile
                self._ensure_shared(shared)
            if accepted:
                complete = {m["version"] for m in self.versions(sym)}
                promoted = [] if previous is None else [
                    v for v in [*previous.get("promoted", []), previous["version"]] if v in complete
                ]
                pointer = {
                    "symbol": sym,
                    "version": version,
                    "model_name": model_name,
                    "triton_version": triton_version,
                    **({"shared": shared["version"], "shared_files": sorted(refs),
                        "triton_model": UNIVERSAL_MODEL} if shared else {}),
                    "published": manifest["published"],
                    "sequence_length": card["sequence_length"],
                    "features": card["features"],
                    "contract": serving,
                    "checksums": {n: u["sha256"] for n, u in manifest["files"].items()},
                    "metrics": metrics.get("test"),
                    "promoted": promoted,
                    **horizons,
                }
                self._put_verified(self._latest_key(sym), json_bytes(pointer))
        except (StoreError, PublishError) as exc:
            # Take back the manifest (best effort), so that readers of `versions` do not see a
            # model that never became latest. The artifacts without a manifest are an
            # incomplete version: ignored, and removed once stale.
            try:
                self.backend.delete(list(reversed(written)))
            except StoreError:
                pass
            raise PublishError(
                f"publishing {sym} {version} to {self.uri} failed; latest is unchanged: {exc}"
            ) from exc
        removed = self.prune(sym, sync=sync)
        return PublishResult(
            symbol=sym,
            version=version,
            status=manifest["status"],
            latest=accepted,
            triton_version=triton_version,
            uri=f"{self.uri}/{self._version_key(sym, version)}",
            reasons=list(gate.get("reasons", [])),
            removed_versions=removed,
            contract_changes=changes if accepted else [],
            shared=shared["version"] if shared else None,
        )

    def _ensure_shared(self, shared: dict[str, Any]) -> dict[str, Any]:
        """The shared version's manifest: the one stored when it holds these files (another
        symbol's publish stored them), else the files uploaded and verified, then the manifest.
        Every publisher of the same model writes the same bytes, so concurrent ones agree."""
        version = shared["version"]
        try:
            stored = self.shared_manifest(version)
            if {n: f["sha256"] for n, f in stored["files"].items()} == {
                    n: _sha256(d) for n, d in shared["files"].items()}:
                return stored
        except (ObjectNotFound, ValueError, KeyError, TypeError):
            pass
        uploaded = {n: self._put_verified(self._shared_key(version, n), d) for n, d in sorted(shared["files"].items())}
        card = shared["card"]
        manifest = {
            "version": version,
            "kind": "universal",
            "created": card.get("created"),
            "symbols": card.get("symbols"),
            "model_name": UNIVERSAL_MODEL,
            "triton_version": shared["triton_version"],
            "sequence_length": card["sequence_length"],
            "features": card["features"],
            "contract": contract.serving_contract(card["sequence_length"], card["features"], outputs=card.get("outputs")),
            "files": uploaded,
        }
        self._put_verified(self._shared_key(version, "manifest.json"), json_bytes(manifest))
        return manifest

    def _put_if_changed(self, key: str, data: bytes) -> None:
        try:
            if self.backend.get(key) == data:
                return
        except ObjectNotFound:
            pass
        self._put_verified(key, data)

    def _next_triton_version(self, symbol: str, model_name: str) -> int:
        """One more than any Triton version ever used: the folders present, the numbers in the
        manifests (a copy may have been removed) and the latest pointer. Never reused."""
        numbers = [
            int(parts[2])
            for k in self.backend.list(f"triton/{model_name}")
            if len(parts := k.split("/")) == 4 and parts[2].isdigit()
        ]
        numbers += [m["triton_version"] for m in self.versions(symbol) if m.get("triton_version") and not m.get("shared")]
        pointer = self._latest_or_none(symbol)
        if pointer and pointer.get("triton_version") and not pointer.get("shared"):
            numbers.append(int(pointer["triton_version"]))
        return max(numbers, default=0) + 1

    def sync_triton(self, symbol: str) -> None:
        """Make the Triton view follow ``latest``: its copy first, then ``config.pbtxt`` pinned
        to it, then remove every other folder but those of retained promoted versions. Each
        step leaves a view that serves the current or the previous latest, so a kill anywhere
        is harmless and the next call finishes the job. A symbol served by a shared model has
        no folder of its own: the universal model's view follows (:meth:`sync_triton_shared`)."""
        sym = self._sym(symbol)
        pointer = self._latest_or_none(sym)
        if pointer is None or not pointer.get("triton_version"):
            return
        model_name = contract.model_name(sym)
        if pointer.get("shared"):
            self.sync_triton_shared()
            self.backend.delete(self.backend.list(f"triton/{model_name}"))
            return
        n = int(pointer["triton_version"])
        model = self.read(sym, pointer["version"], contract.MODEL_FILE, pointer["checksums"][contract.MODEL_FILE])
        self._put_if_changed(f"triton/{model_name}/{n}/{contract.MODEL_FILE}", model)
        config = triton_config(model_name, pointer["sequence_length"], len(pointer["features"]), n,
                               contract.horizon_rows(contract.contract_of(pointer)))
        self._put_if_changed(f"triton/{model_name}/config.pbtxt", config.encode())
        keep = {n} | {m["triton_version"] for m in self.versions(sym) if m["status"] == "accepted"}
        self.backend.delete([
            k for k in self.backend.list(f"triton/{model_name}")
            if len(parts := k.split("/")) == 4 and (not parts[2].isdigit() or int(parts[2]) not in keep)
        ])

    def sync(self, symbols: list[str] | None = None) -> None:
        """After publishes with ``sync=False``: the shared versions no symbol uses any more
        removed (:meth:`prune_shared`), then :meth:`sync_triton` of ``symbols`` (default: every
        symbol with a pointer), the universal model's view once."""
        self.prune_shared()
        shared = False
        for sym in symbols if symbols is not None else self.symbols():
            pointer = self._latest_or_none(sym)
            if pointer is not None and pointer.get("shared"):
                shared = True
                self.backend.delete(self.backend.list(f"triton/{contract.model_name(self._sym(sym))}"))
            else:
                self.sync_triton(sym)
        if shared:
            self.sync_triton_shared()

    def sync_triton_shared(self) -> None:
        """The universal model's Triton view (``triton/universal/``): one folder per shared
        version that a symbol's pointer names (numbered by its training time), the config
        pinned to them (``/v2/models/universal/infer`` answers from the newest; a symbol kept
        on an older one by its gate is at ``/versions/<n>/infer``, its pointer's
        ``triton_version``). Versions of another serving contract than the newest's are left out
        (one Triton config, one input shape). Copies first, then the config, then the removal
        of folders no pointer names; never of a folder newer than those this call saw (a
        concurrent publish's)."""
        named: dict[str, int] = {}
        for sym in self.symbols():
            pointer = self._latest_or_none(sym)
            if pointer is not None and pointer.get("shared") and pointer.get("triton_version"):
                named[pointer["shared"]] = int(pointer["triton_version"])
        if not named:
            return
        manifests = {v: self.shared_manifest(v) for v in sorted(named)}
        newest = manifests[max(manifests)]
        by_number = {m["triton_version"]: v for v, m in sorted(manifests.items())  # one model a second: the newest
                     if m["contract"] == newest["contract"] and m["triton_version"] == named[v]}
        pinned = {v: n for n, v in by_number.items()}
        for version, n in sorted(pinned.items(), key=lambda item: -item[1]):
            info = manifests[version]["files"][contract.MODEL_FILE]
            model = self.read_shared(version, contract.MODEL_FILE, info["sha256"])
            self._put_if_changed(f"triton/{UNIVERSAL_MODEL}/{n}/{contract.MODEL_FILE}", model)
        numbers = sorted(pinned.values())
        config = contract.triton_config(
            UNIVERSAL_MODEL, newest["sequence_length"], len(newest["features"]),
            f"{{ specific: {{ versions: [ {', '.join(str(n) for n in numbers)} ] }} }}",
            contract.horizon_rows(newest["contract"]))
        self._put_if_changed(f"triton/{UNIVERSAL_MODEL}/config.pbtxt", config.encode())
        self.backend.delete([
            k for k in self.backend.list(f"triton/{UNIVERSAL_MODEL}")
            if len(parts := k.split("/")) == 4
            and (not parts[2].isdigit() or (int(parts[2]) not in numbers and int(parts[2]) < max(numbers)))
        ])

    def prune(self, symbol: str, sync: bool = True) -> list[str]:
        """Keep the newest ``keep`` complete versions and always the ``latest`` one; remove the
        rest, and the debris of interrupted publishes once stale; then, unless ``sync`` is false
        (see :meth:`sync`), the shared versions no symbol version uses any more
        (:meth:`prune_shared`) and the Triton view. Returns the removed versions."""
        sym = self._sym(symbol)
        by_version = self._by_version(sym)
        pointer = self._latest_or_none(sym)
        status = {m["version"]: m["status"] for m in self.versions(sym)}
        complete = sorted(v for v, s in status.items() if s in ("accepted", "rejected"))
        cutoff = datetime.now(UTC).timestamp() - self.stale_after
        debris = [v for v in by_version if v not in complete and _version_time(v) < cutoff]
        old = complete[: max(0, len(complete) - self.keep)]
        doomed = sorted(v for v in {*old, *debris} if not (pointer and v == pointer["version"]))
        for version in doomed:
            self.backend.delete(by_version[version])
        clean = getattr(self.backend, "remove_stale_temporary", None)
        if clean is not None:
            clean(self.stale_after)
        if sync:
            if doomed:
                self.prune_shared()
            self.sync_triton(sym)
        return doomed

    def prune_shared(self) -> list[str]:
        """Remove the shared versions (and their debris) that no version of any symbol uses:
        none of their names ends in the shared version's SHA-256 prefix, whatever its state
        (kept, rejected, interrupted). Only stale ones (older than ``stale_after``): a publish
        claims its shared version by writing its own files first, and one that found a copy a
        prune then took checks it again after its manifest. Returns the removed versions."""
        by_version: dict[str, list[str]] = {}
        for k in self.backend.list("shared"):
            parts = k.split("/")
            if len(parts) >= 3 and _VERSION_RE.match(parts[1]):
                by_version.setdefault(parts[1], []).append(k)
        if not by_version:
            return []
        used = {parts[2][-8:] for k in self.backend.list("models")
                if len(parts := k.split("/")) >= 4 and _VERSION_RE.match(parts[2])}
        cutoff = datetime.now(UTC).timestamp() - self.stale_after
        doomed = sorted(v for v in by_version if v[-8:] not in used and _version_time(v) < cutoff)
        for version in doomed:
            self.backend.delete(by_version[version])
        return doomed


def _promoted(version: str, pointer: dict[str, Any] | None) -> bool:
    """Whether ``version`` ever was latest. Pointers written before the ``promoted`` list existed
    vouch for every version up to theirs."""
    if pointer is None:
        return False
    if "promoted" not in pointer:
        return version <= pointer["version"]
    return version == pointer["version"] or version in pointer["promoted"]


def _read_artifacts(folder: Path, symbol: str) -> dict[str, bytes]:
    if not folder.is_dir():
        raise ConfigError(f"no artifact folder at {folder}; run `mkrich train --out {folder}` first")
    missing = [n for n in REQUIRED_FILES if not (folder / n).is_file()]
    if missing:
        raise ConfigError(f"{folder} lacks {', '.join(missing)}; is it the output of `mkrich train`?")
    files = {n: (folder / n).read_bytes() for n in contract.ARTIFACT_FILES if (folder / n).is_file()}
    try:
        card = json.loads(files["model_card.json"])
        json.loads(files["metrics.json"])
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{folder}: model_card.json or metrics.json is not valid JSON: {exc}") from exc
    if card.get("symbol") != symbol:
        raise ConfigError(
            f"{folder} holds a model of {card.get('symbol')!r}, not {symbol!r}; check --symbol"
        )
    listed = card.get("files") or {}
    unlisted = [n for n in files if n != "model_card.json" and n not in listed]
    if unlisted:
        raise ConfigError(
            f"{folder}/model_card.json lists no checksum for {', '.join(unlisted)}; the folder "
            "was not written by `mkrich train` (or was modified after it)"
        )
    for name, digest in listed.items():
        if name in files and _sha256(files[name]) != digest:
            raise ConfigError(
                f"{folder}/{name} does not match the checksum in model_card.json: the folder was "
                "modified after training"
            )
    return files


def _read_shared_model(folder: Path, checksums: dict[str, str]) -> dict[str, Any]:
    """What a universal model folder stores once: its files (:data:`SHARED_SOURCES`), its card,
    its version name (training time and SHA-256 prefix of the model: the same for every
    publisher of the model) and its Triton version (the training time as a number)."""
    if not (folder / "model.onnx").is_file() or not (folder / "model_card.json").is_file():
        raise ConfigError(f"{folder} is not a universal model folder (no model.onnx and model_card.json); "
                          "pass the folder that `mkrich train --symbols ... --out` wrote")
    files = {n: (folder / rel).read_bytes() for n, rel in SHARED_SOURCES.items() if (folder / rel).is_file()}
    try:
        card = json.loads(files["model_card.json"])
        created = datetime.fromisoformat(card["created"]).astimezone(UTC)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{folder}/model_card.json has no valid 'created' time: {exc}") from exc
    if card.get("kind") != "universal":
        raise ConfigError(f"{folder} holds a model of kind {card.get('kind')!r}, not a universal model")
    digest = _sha256(files["model.onnx"])
    if digest != checksums.get("model.onnx"):
        raise ConfigError(f"the artifacts were not evaluated from the model in {folder}: their model.onnx differs")
    return {"version": f"{created.strftime('%Y%m%dT%H%M%S.%fZ')}-{digest[:8]}", "files": files, "card": card,
            "triton_version": int(created.strftime("%Y%m%d%H%M%S"))}
