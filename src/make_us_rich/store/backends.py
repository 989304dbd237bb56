"""Object storage backends for the model store: a local folder (the embedded default) and
S3-compatible storage (MinIO, AWS S3, ...) through boto3.

Both speak the same tiny protocol over ``/``-separated keys: put, get, list, delete.
A ``put`` is atomic for readers (local: write to a temp file then rename; S3: one PUT).

S3 settings come from the usual AWS environment, so the same code talks to MinIO and AWS:
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (or any boto3 credential source),
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (e.g. ``http://minio.kubeflow:9000``),
``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_CA_BUNDLE``; ``S3_VERIFY_SSL=0`` turns TLS
verification off for self-signed test endpoints. Credentials are never logged.
"""

from __future__ import annotations

import builtins
import os
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from make_us_rich.errors import ConfigError, MakeUsRichError
from make_us_rich.io import atomic_write_bytes


class StoreError(MakeUsRichError, RuntimeError):
    """The storage backend failed (unreachable, denied, missing bucket...)."""


class ObjectNotFound(StoreError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0]) if self.args else "object not found"


class Backend(Protocol):
    uri: str

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def list(self, prefix: str) -> builtins.list[str]: ...
    def delete(self, keys: builtins.list[str]) -> None: ...


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ConfigError(f"invalid object key {key!r}")
    return key


class LocalBackend:
    """Objects as files under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_check_key(key).split("/"))

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            atomic_write_bytes(path, data, suffix=".part", fsync=True)
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc}") from exc

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"no object {key!r} in {self.uri}") from None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc

    def list(self, prefix: str) -> builtins.list[str]:
        base = self.root.joinpath(*[p for p in prefix.split("/") if p])
        if not base.is_dir():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in keys if not k.rsplit("/", 1)[-1].startswith("."))

    def remove_stale_temporary(self, older_than: float) -> builtins.list[Path]:
        """Delete the ``.part`` files a killed writer left, once older than ``older_than``
        seconds (a younger one may belong to a write in progress)."""
        cutoff = time.time() - older_than
        stale = [p for p in self.root.rglob(".*.part") if p.is_file() and p.stat().st_mtime <= cutoff]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def delete(self, keys: builtins.list[str]) -> None:
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            parent = path.parent
            while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent


class S3Backend:
    """Objects under ``s3://bucket/prefix`` through boto3."""

    def __init__(self, bucket: str, prefix: str = "", client=None) -> None:
        if not bucket:
            raise ConfigError("an S3 store needs a bucket: s3://BUCKET[/PREFIX]")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._client = client or self._default_client()

    @staticmethod
    def _default_client():
        import boto3
        from botocore.config import Config

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        verify: bool | str | None = None
        if os.environ.get("S3_VERIFY_SSL", "").lower() in ("0", "false", "no"):
            verify = False
        return boto3.client(
            "s3",
            endpoint_url=endpoint or None,
            verify=verify,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}),
        )

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, action: str, key: str, exc: Exception) -> StoreError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "?")
            if code in ("NoSuchKey", "404", "NotFound"):
                return ObjectNotFound(f"no object {key!r} in {self.uri}")
            if code == "NoSuchBucket":
                return StoreError(f"bucket {self.bucket!r} does not exist at the S3 endpoint; create it first")
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
                return StoreError(
                    f"{action} {self.uri}/{key}: access denied ({code}); check AWS_ACCESS_KEY_ID / "
                    "AWS_SECRET_ACCESS_KEY and the bucket policy"
                )
            return StoreError(f"{action} {self.uri}/{key} failed: {code}")
        return StoreError(f"{action} {self.uri}/{key} failed: {type(exc).__name__}: {exc}")

    def put(self, key: str, data: bytes) -> None:
        full = self._key(key)
        try:
            self._client.put_object(Bucket=self.bucket, Key=full, Body=data)
        except Exception as exc:
            raise self._fail("writing", key, exc) from exc

    def get(self, key: str) -> bytes:
        full = self._key(key)
        try:
            return self._client.get_object(Bucket=self.bucket, Key=full)["Body"].read()
        except Exception as exc:
            raise self._fail("reading", key, exc) from exc

    def list(self, prefix: str) -> builtins.list[str]:
        full = self._key(prefix.strip("/")) + "/" if prefix.strip("/") else (self.prefix + "/" if self.prefix else "")
        cut = len(self.prefix) + 1 if self.prefix else 0
        keys: builtins.list[str] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                keys.extend(obj["Key"][cut:] for obj in page.get("Contents", []))
        except Exception as exc:
            raise self._fail("listing", prefix, exc) from exc
        return sorted(keys)

    def delete(self, keys: builtins.list[str]) -> None:
        for i in range(0, len(keys), 1000):
            chunk = [{"Key": self._key(k)} for k in keys[i : i + 1000]]  # validated before I/O
            try:
                answer = self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})
            except Exception as exc:
                raise self._fail("deleting", keys[i], exc) from exc
            errors = answer.get("Errors") or []
            if errors:  # delete_objects reports per-key failures instead of raising
                first = errors[0]
                raise StoreError(
                    f"deleting {len(errors)} object(s) in {self.uri} failed, e.g. "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}".rstrip()
                )


def open_backend(uri: str | Path) -> Backend:
    """``s3://bucket/prefix`` -> :class:`S3Backend`; ``file:///path`` or a path -> :class:`LocalBackend`."""
    text = str(uri).strip()
    if not text:
        raise ConfigError("empty store URI; use a folder path, file:///path or s3://bucket/prefix")
    parsed = urlparse(text)
    if parsed.scheme == "s3":
        return S3Backend(parsed.netloc, parsed.path)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"file URIs must be local (file:///path), got {text!r}")
        return LocalBackend(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:
        raise ConfigError(f"unsupported store URI scheme {parsed.scheme!r}; use a path, file:// or s3://")
    return LocalBackend(text)
