"""A publish killed with SIGKILL (no cleanup, as ``kill -9``) at a chosen step, for the tests of the
store's invariants after an interruption (``tests/store``). The store's code knows nothing of it:
the process to be killed wraps the backend its :class:`~make_us_rich.store.ModelStore` opens in
:class:`KillingBackend`, which kills the process just before or just after the write that marks
the step (:func:`kill_at`, called first in that process).
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable

_VERSION_MANIFEST = re.compile(r"^models/[^/]+/[^/]+/manifest\.json$")


def _triton_config(key: str) -> bool:
    return key.startswith("triton/") and key.endswith("/config.pbtxt")


#: The steps of a publish, each as (kill before or after, the write that marks it):
#: ``files`` the version's own files are stored (not yet the shared model nor the manifest);
#: ``shared`` the universal model's shared files too; ``manifest`` the version's manifest is
#: written; ``pointer`` latest.json names the version; ``triton-copy`` the model is in the Triton
#: view, whose config does not name it yet; ``triton-config`` the config names it.
POINTS: dict[str, tuple[str, Callable[[str], bool]]] = {
    "files": ("before", lambda key: key.startswith("shared/") or bool(_VERSION_MANIFEST.match(key))),
    "shared": ("before", lambda key: bool(_VERSION_MANIFEST.match(key))),
    "manifest": ("after", lambda key: bool(_VERSION_MANIFEST.match(key))),
    "pointer": ("after", lambda key: key.startswith("models/") and key.endswith("/latest.json")),
    "triton-copy": ("before", _triton_config),
    "triton-config": ("after", _triton_config),
}


class KillingBackend:
    """A store backend that SIGKILLs its own process at ``point`` (one of :data:`POINTS`);
    every other call goes to ``inner`` unchanged."""

    def __init__(self, inner, point: str) -> None:
        if point not in POINTS:
            raise ValueError(f"unknown point {point!r}; points: {', '.join(POINTS)}")
        self.inner, self.point = inner, point

    def put(self, key: str, data: bytes) -> None:
        when, marks = POINTS[self.point]
        if when == "before" and marks(key):
            os.kill(os.getpid(), signal.SIGKILL)
        self.inner.put(key, data)
        if when == "after" and marks(key):
            os.kill(os.getpid(), signal.SIGKILL)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def kill_at(point: str) -> None:
    """Every store this process opens from now on is killed at ``point``."""
    from make_us_rich.store import model_store

    opener = model_store.open_backend
    KillingBackend(None, point)  # an unknown point fails here, not as a publish that completes
    model_store.open_backend = lambda uri: KillingBackend(opener(uri), point)

