"""Object-store access: a local folder store or MinIO/S3.

Filesystem store: object key ``k`` in bucket ``b`` lives at ``<root>/<b>/<k>``.
MinIO/S3: env ``MINIO_ENDPOINT`` (e.g. ``http://127.0.0.1:9000``), ``MINIO_ACCESS_KEY``,
``MINIO_SECRET_KEY``, ``MINIO_BUCKET`` (default ``glimpse``).
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from urllib.parse import urlparse


class Store:
    kind = "abstract"

    def get(self, key: str) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        raise NotImplementedError  # pragma: no cover

    def exists(self, key: str) -> bool:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover
        raise NotImplementedError


class FSStore(Store):
    kind = "fs"

    def __init__(self, root: str | Path, bucket: str = "glimpse"):
        self.root = Path(root)
        self.bucket = bucket
        self.base = self.root / bucket

    def _path(self, key: str) -> Path:
        key = key.lstrip("/")
        p = (self.base / key).resolve()
        if not str(p).startswith(str(self.base.resolve())):
            raise ValueError(f"key escapes the bucket: {key}")
        return p

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, p)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def describe(self) -> str:
        return f"fs:{self.base}"


class MinioStore(Store):
    kind = "minio"

    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str = "glimpse"):
        from minio import Minio  # imported lazily

        u = urlparse(endpoint if "://" in endpoint else "http://" + endpoint)
        self.endpoint = endpoint
        self.bucket = bucket
        self.client = Minio(u.netloc, access_key=access_key, secret_key=secret_key,
                            secure=(u.scheme == "https"))

    def get(self, key: str) -> bytes:
        r = self.client.get_object(self.bucket, key)
        try:
            return r.read()
        finally:
            r.close()
            r.release_conn()

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)
        self.client.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type=content_type)

    def exists(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            self.client.stat_object(self.bucket, key)
            return True
        except S3Error as e:  # "not there" only; an unreachable store raises
            if e.code in ("NoSuchKey", "NoSuchBucket", "ResourceNotFound"):
                return False
            raise

    def describe(self) -> str:
        return f"minio:{self.endpoint}/{self.bucket}"


def open_store(kind: str = "auto", store_dir: str = "", bucket: str = "") -> Store | None:
    """Open the configured store; ``None`` when none is configured (kind=auto)."""
    bucket = bucket or os.environ.get("MINIO_BUCKET", "glimpse")
    if kind == "fs" or (kind == "auto" and store_dir):
        if not store_dir:
            raise ValueError("--store-dir is required for the filesystem store")
        return FSStore(store_dir, bucket)
    if kind == "minio" or (kind == "auto" and os.environ.get("MINIO_ENDPOINT")):
        ep = os.environ.get("MINIO_ENDPOINT")
        if not ep:
            raise ValueError("MINIO_ENDPOINT is not set")
        return MinioStore(ep, os.environ.get("MINIO_ACCESS_KEY", ""),
                          os.environ.get("MINIO_SECRET_KEY", ""), bucket)
    if kind not in ("auto", "none"):
        raise ValueError(f"unknown store kind {kind}")
    return None
