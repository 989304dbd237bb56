"""Container images, one per role: the single setting shared by the KFP components, the
manifests and the Helm chart. The Dockerfile builds the role named by its ``ROLE`` build argument.

``MKRICH_IMAGE_REGISTRY`` (default ``ghcr.io/make-us-rich``) and ``MKRICH_IMAGE_TAG`` (default:
the package version) pick them; they are read when the components module is imported, i.e. at
compile time.

* ``data``: data/pipeline code, python-binance, boto3, kfp - no TensorFlow
* ``trainer``: TensorFlow, tf2onnx, onnx, onnxruntime, matplotlib
* ``server``: kserve + onnxruntime - no TensorFlow
* ``console``: the web console (``mkrich console``) - neither TensorFlow nor kserve
"""

from __future__ import annotations

import os

from make_us_rich import __version__

ROLES = ("data", "trainer", "server", "console")
DEFAULT_REGISTRY = "ghcr.io/make-us-rich"


def image(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown image role {role!r}; roles: {', '.join(ROLES)}")
    registry = os.environ.get("MKRICH_IMAGE_REGISTRY", DEFAULT_REGISTRY).rstrip("/")
    tag = os.environ.get("MKRICH_IMAGE_TAG", __version__)
    return f"{registry}/make-us-rich-{role}:{tag}"
