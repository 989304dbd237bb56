"""Model store: local folder (default) or S3-compatible storage. See :mod:`.model_store`."""

from make_us_rich.store.backends import (
    LocalBackend,
    ObjectNotFound,
    S3Backend,
    StoreError,
    open_backend,
)
from make_us_rich.store.model_store import (
    DEFAULT_KEEP,
    UNIVERSAL_MODEL,
    MalformedPointer,
    ModelStore,
    PublishError,
    PublishResult,
    triton_config,
)

__all__ = [
    "DEFAULT_KEEP",
    "LocalBackend",
    "MalformedPointer",
    "ModelStore",
    "ObjectNotFound",
    "PublishError",
    "PublishResult",
    "S3Backend",
    "StoreError",
    "UNIVERSAL_MODEL",
    "open_backend",
    "triton_config",
]
