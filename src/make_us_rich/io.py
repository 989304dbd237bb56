"""Writing files so that readers never see half of one: every artifact of the project goes
through here (JSON, scalers, klines, feature tables, store objects of the local backend)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path, *, suffix: str = ".tmp", fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename
    (mode 0644), on failure it is removed and ``path`` is untouched."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
        tmp.chmod(0o644)  # mkstemp creates 0600; artifacts are meant to be shared
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes, *, suffix: str = ".tmp", fsync: bool = False) -> None:
    with atomic_path(path, suffix=suffix, fsync=fsync) as tmp:
        tmp.write_bytes(data)


def json_bytes(payload: Any) -> bytes:
    """Strict (no NaN), indented JSON with a final newline: every JSON artifact we write."""
    return (json.dumps(payload, indent=2, allow_nan=False) + "\n").encode()


def write_json(path: str | Path, payload: Any) -> None:
    atomic_write_bytes(path, json_bytes(payload))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
