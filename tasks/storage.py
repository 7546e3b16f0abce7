"""Reading and atomic writing through fsspec (local paths, ``file://``, ``s3://``, ...).

Atomic writes: the bytes go to a hidden temporary name beside the target, then are moved onto
the target name (a rename on a local disk; a server-side copy and delete on S3, where an object
only becomes visible once it is complete).  A killed writer therefore leaves at most a hidden
temporary file, never a partial file under the real name.

S3 endpoints other than AWS (MinIO, moto) come from ``storage_options``
(``{"client_kwargs": {"endpoint_url": ...}}``); see :func:`s3_options`.
"""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs


def s3_options(endpoint_url: str | None) -> dict:
    """storage_options for s3fs with an explicit endpoint (credentials come from the environment)."""
    return {"client_kwargs": {"endpoint_url": endpoint_url}} if endpoint_url else {}


def options_for(url: str, storage_options: dict | None) -> dict:
    """Only s3 URLs take the S3 options; local paths take none."""
    return dict(storage_options or {}) if url.startswith(("s3://", "s3a://")) else {}


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def _fs(url: str, storage_options: dict | None):
    return url_to_fs(url, **options_for(url, storage_options))


def read_bytes(url: str, *, storage_options: dict | None = None) -> bytes:
    with fsspec.open(url, "rb", **options_for(url, storage_options)) as f:
        return f.read()


def exists(url: str, *, storage_options: dict | None = None) -> bool:
    fs, path = _fs(url, storage_options)
    return fs.exists(path)


def write_bytes_atomic(url: str, data: bytes, *, storage_options: dict | None = None) -> None:
    fs, path = _fs(url, storage_options)
    parent, _, name = path.rpartition("/")
    tmp = f"{parent}/.{name}.tmp-{uuid.uuid4().hex}"
    fs.makedirs(parent, exist_ok=True)
    try:
        with fs.open(tmp, "wb") as f:
            f.write(data)
        fs.mv(tmp, path)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)
    fs.invalidate_cache(parent)


def write_json_atomic(url: str, obj: Any, *, storage_options: dict | None = None) -> None:
    data = json.dumps(obj, indent=2, sort_keys=True, default=str).encode() + b"\n"
    write_bytes_atomic(url, data, storage_options=storage_options)


def read_json(url: str, *, storage_options: dict | None = None) -> Any:
    return json.loads(read_bytes(url, storage_options=storage_options))


def write_parquet_atomic(url: str, table: pa.Table, *, storage_options: dict | None = None) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    write_bytes_atomic(url, buf.getvalue(), storage_options=storage_options)


def read_parquet(url: str, *, storage_options: dict | None = None) -> pa.Table:
    return pq.read_table(io.BytesIO(read_bytes(url, storage_options=storage_options)))


def remove_tree(url: str, *, storage_options: dict | None = None) -> None:
    fs, path = _fs(url, storage_options)
    if fs.exists(path):
        fs.rm(path, recursive=True)
