"""Reading, filtering and atomically rewriting the data files runs wrote (any fsspec URL).

Parquet goes through pyarrow (the schema is kept exactly); CSV and JSON Lines input copies
through pandas.  Rewrites go to a temporary file beside the target, then replace it in one move,
so a reader never sees a half-written file and a crash leaves the old file whole.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from compliance.errors import ComplianceError

SUBJECT_COLUMN = "subject_id"


def _fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def exists(url: str) -> bool:
    fs, path = _fs(url)
    return bool(fs.exists(path))


def _kind(url: str) -> str:
    lowered = url.lower()
    for suffix, kind in (
        (".parquet", "parquet"),
        (".csv", "csv"),
        (".jsonl", "jsonl"),
        (".json", "jsonl"),
    ):
        if lowered.endswith(suffix):
            return kind
    raise ComplianceError(f"cannot read {url}: use .parquet, .csv or .jsonl files")


def has_subject_column(url: str) -> bool | None:
    """Whether the file carries ``subject_id`` (None when the file does not exist)."""
    fs, path = _fs(url)
    if not fs.exists(path):
        return None
    if _kind(url) == "parquet":
        with fs.open(path, "rb") as f:
            return SUBJECT_COLUMN in pq.read_schema(f).names
    table = read_table(url, require_subject=False)
    return table is not None and SUBJECT_COLUMN in table.column_names


def read_table(url: str, *, require_subject: bool = True) -> pa.Table | None:
    """The file as an Arrow table, or None when it does not exist."""
    fs, path = _fs(url)
    if not fs.exists(path):
        return None
    kind = _kind(url)
    with fs.open(path, "rb") as f:
        if kind == "parquet":
            table = pq.read_table(f)
        elif kind == "csv":
            table = pa.Table.from_pandas(
                pd.read_csv(f, dtype={SUBJECT_COLUMN: str}), preserve_index=False
            )
        else:
            table = pa.Table.from_pandas(
                pd.read_json(f, lines=True, dtype={SUBJECT_COLUMN: str}), preserve_index=False
            )
    if require_subject and SUBJECT_COLUMN not in table.column_names:
        raise ComplianceError(
            f"{url} has no {SUBJECT_COLUMN!r} column, so the subject's rows cannot be found;"
            " every file a run records must carry it"
        )
    return table


def _mask(table: pa.Table, subject_id: str) -> pa.ChunkedArray:
    column = table.column(SUBJECT_COLUMN)
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        column = pc.cast(column, pa.string())
    return pc.fill_null(pc.equal(column, subject_id), False)


def _linkable(url: str) -> pa.Table | None:
    """The table when it exists and carries ``subject_id``; a file without that column cannot
    be searched for a subject (``has_subject_column`` tells callers to report it)."""
    table = read_table(url, require_subject=False)
    if table is None or SUBJECT_COLUMN not in table.column_names:
        return None
    return table


def subject_rows(url: str, subject_id: str) -> list[dict[str, Any]]:
    table = _linkable(url)
    if table is None:
        return []
    return table.filter(_mask(table, subject_id)).to_pylist()


def count_subject_rows(url: str, subject_id: str) -> int:
    table = _linkable(url)
    if table is None:
        return 0
    return int(pc.sum(_mask(table, subject_id)).as_py() or 0)


def _write(table: pa.Table, url: str) -> None:
    fs, path = _fs(url)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    kind = _kind(url)
    with fs.open(tmp, "wb") as f:
        if kind == "parquet":
            pq.write_table(table, f)
        elif kind == "csv":
            table.to_pandas().to_csv(f, index=False)
        else:
            f.write(table.to_pandas().to_json(orient="records", lines=True).encode())
    fs.mv(tmp, path)


def erase_subject(url: str, subject_id: str) -> int:
    """Rewrite the file without the subject's rows; returns how many rows were removed
    (0, and nothing written, when there were none or the file is gone)."""
    table = _linkable(url)
    if table is None:
        return 0
    mask = _mask(table, subject_id)
    removed = int(pc.sum(mask).as_py() or 0)
    if removed:
        _write(table.filter(pc.invert(mask)), url)
    return removed


def delete(url: str) -> bool:
    """Delete the file; returns whether it existed."""
    fs, path = _fs(url)
    if not fs.exists(path):
        return False
    fs.rm(path)
    return True


def write_bytes_atomic(url: str, data: bytes) -> None:
    """Write ``data`` whole or not at all.  A local file holds personal data: it is created
    0600 (its folder 0700 when new), never readable by other users even for an instant."""
    fs, path = _fs(url)
    parent = path.rsplit("/", 1)[0]
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    if isinstance(fs, LocalFileSystem):
        if parent:
            os.makedirs(parent, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        return
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)
