"""The model registry as the console shows it, read through :class:`ModelStore`: every version
of every symbol, its status (accepted / rejected / incomplete, and which one is ``latest``), the
gate's reasons and the test metrics beside the baselines."""

from __future__ import annotations

import re
from typing import Any

from make_us_rich import contract
from make_us_rich.contract import ModelScores
from make_us_rich.errors import ConfigError
from make_us_rich.runs import model_kind
from make_us_rich.store import MalformedPointer, ModelStore, StoreError

PLOTS = contract.OPTIONAL_FILES


def all_symbols(store: ModelStore) -> list[str]:
    """Symbols with any stored version (also those whose models were all rejected)."""
    return sorted({parts[1] for k in store.backend.list("models")
                   if len(parts := k.split("/")) >= 3 and re.fullmatch(r"[A-Z0-9]{5,20}", parts[1])})


def _flat(scores: dict[str, Any]) -> dict[str, float]:
    row = {k: v for k, v in scores.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    for level, interval in sorted((scores.get("intervals") or {}).items()):
        if isinstance(interval, dict) and isinstance(interval.get("coverage"), int | float):
            row[f"coverage {level} %"] = interval["coverage"]
    return row


def _metrics_rows(metrics: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per forecaster on the test period: the model first, then the baselines."""
    if not metrics or not isinstance(metrics.get("model"), dict):
        return []
    rows = [{"name": "model", **_flat(metrics["model"])}]
    for name, scores in (metrics.get("baselines") or {}).items():
        if isinstance(scores, dict):
            rows.append({"name": name, **_flat(scores)})
    return rows


def symbol_versions(store: ModelStore, symbol: str) -> dict[str, Any]:
    try:
        latest = store.pointer(symbol)
    except MalformedPointer:
        latest = None
    latest_version = latest.version if latest else None
    versions = []
    for m in reversed(store.manifests(symbol)):
        versions.append({
            "version": m.version,
            "status": "serving" if m.version == latest_version else m.status,
            "published": m.published,
            "reasons": list(m.gate.reasons),
            "gate_passed": m.gate.passed,
            "metrics": _metrics_rows(m.metrics),
            "plots": [p for p in PLOTS if p in m.files],
        })
    return {"symbol": symbol, "latest": latest_version, "versions": versions}


def quality(store: ModelStore, symbol: str) -> dict[str, Any]:
    """How good the serving model was on its test period: the gate's ratios (below 1 beats the
    baseline) and the 90 % interval's coverage."""
    try:
        pointer = store.pointer(symbol)
    except MalformedPointer:
        pointer = None
    try:
        scores = pointer.scores if pointer else ModelScores()
    except ValueError:  # scores a page shows, not what it stands on: none rather than a 500
        scores = ModelScores()
    return {
        "pinball_vs_empirical": scores.pinball_vs_empirical,
        "median_rmse_vs_persistence": scores.rmse_vs_persistence,
        "coverage_90": scores.coverage90,
        "test_period": list(scores.period) if scores.period else None,
    }


def _pointer(store: ModelStore, symbol: str) -> contract.Pointer | None:
    try:
        return store.pointer(symbol)
    except StoreError:  # a malformed pointer or an unreadable store: nothing to say
        return None


def serving_model(store: ModelStore, symbol: str) -> dict[str, Any] | None:
    """The model that serves ``symbol`` (``None``: none does): its version, kind, the symbols a
    universal one was trained on, and the served symbols that share it (their pointers name the
    same version or the same ONNX file), read through the store's pointers and model cards."""
    pointer = _pointer(store, symbol)
    if pointer is None:
        return None
    info = {"version": pointer.version, **model_kind(store, symbol, pointer.version), "shared_by": [symbol]}
    if info["kind"] == "universal":
        onnx = pointer.checksums.get(contract.MODEL_FILE)
        try:
            served = store.symbols()
        except StoreError:
            served = []
        shared = pointer.shared  # a store that keeps a universal model once names it

        def same(p: contract.Pointer | None) -> bool:
            return p is not None and bool(p.version == pointer.version or shared and p.shared == shared
                                          or onnx and p.checksums.get(contract.MODEL_FILE) == onnx)

        info["shared_by"] = [s for s in served if s == symbol or same(_pointer(store, s))]
    return info


def registry(store: ModelStore) -> list[dict[str, Any]]:
    """Every symbol's versions; a symbol whose versions cannot be read (a malformed manifest) is
    listed with its ``error``, the others as usual."""
    entries = []
    for symbol in all_symbols(store):
        try:
            entries.append(symbol_versions(store, symbol))
        except (StoreError, ConfigError) as exc:
            entries.append({"symbol": symbol, "latest": None, "versions": [], "error": str(exc)})
    return entries


def plot(store: ModelStore, symbol: str, version: str, name: str) -> bytes:
    """A training plot of a version, checked against its manifest's checksum."""
    if name not in PLOTS:
        raise FileNotFoundError(name)
    info = store.manifest(symbol, version)["files"].get(name)
    if info is None:
        raise FileNotFoundError(name)
    return store.read(symbol, version, name, info["sha256"])
