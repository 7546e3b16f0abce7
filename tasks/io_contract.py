"""The input contract of a secure-inference batch: reading, the pandera schema, quarantine.

A batch is CSV (with a header), JSON Lines or Parquet, from any fsspec URL.  Columns:

============  ========  ===============================================================
column        required  rule
============  ========  ===============================================================
record_id     yes       non-empty string, unique within the batch
subject_id    yes       non-empty string (pseudonymous id of the data subject)
text          yes       non-empty string of at most ``max_text_chars`` characters
region        yes       ``americas``, ``europe`` or ``apac`` (case-insensitive)
locale        no        BCP 47-like tag (``en``, ``pt-BR``, ``zh_Hans``) or empty
created_at    no        ISO 8601 timestamp or empty
============  ========  ===============================================================

Two kinds of problems:

* **Whole-input problems** (unreadable or empty file, missing required columns, a Parquet
  column of the wrong type) raise :class:`BatchUnusable` before any MPC work.
* **Record problems** put the record in quarantine with one or more reason codes
  (:data:`REASON_CODES`); the other records still run.  A record whose bytes are not UTF-8, or
  a CSV/JSON line that cannot be parsed, is kept with its line number.

The quarantine file has ``row``, ``line``, ``record_id``, ``subject_id`` (so that erasure can
find a subject's quarantined records; null when it could not be decoded) and ``reasons``.
``row`` is the 1-based number of the record among the data records; ``line`` is the 1-based
physical line where it starts (the CSV header is line 1; ``None`` for Parquet).  Nothing here
ever puts record text into a message, a log line or the quarantine file.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.parquet as pq
from pandera.typing import Series

from mpc.errors import InputError
from tasks import storage

REQUIRED_COLUMNS = ("record_id", "subject_id", "text", "region")
OPTIONAL_COLUMNS = ("locale", "created_at")
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
REGIONS = ("americas", "europe", "apac")
DEFAULT_MAX_TEXT_CHARS = 20_000
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
           ".parquet": "parquet", ".pq": "parquet"}

REASON_CODES = {
    "undecodable_utf8": "the record's bytes are not valid UTF-8",
    "malformed_row": "the CSV row has the wrong number of fields, or the JSON line is not an object",
    "record_id_missing": "record_id is empty or absent",
    "record_id_not_string": "record_id is not a string",
    "record_id_duplicate": "another record has the same record_id (all copies are quarantined)",
    "subject_id_missing": "subject_id is empty or absent",
    "subject_id_not_string": "subject_id is not a string",
    "text_empty": "text is empty, blank or absent",
    "text_not_string": "text is not a string",
    "text_too_long": "text is longer than the maximum number of characters",
    "region_unknown": "region is not one of americas, europe, apac",
    "locale_invalid": "locale is not a language tag such as en, pt-BR, zh_Hans",
    "created_at_invalid": "created_at is not an ISO 8601 timestamp",
}

QUARANTINE_SCHEMA = pa_arrow.schema([
    ("row", pa_arrow.int64()),
    ("line", pa_arrow.int64()),
    ("record_id", pa_arrow.string()),
    ("subject_id", pa_arrow.string()),
    ("reasons", pa_arrow.list_(pa_arrow.string())),
])

_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")


class BatchUnusable(InputError):
    """The input as a whole cannot be used (nothing was computed); the message says how to fix it."""


@dataclass(frozen=True, kw_only=True)
class RawBatch:
    """Records as read, before validation: object columns plus ``_row`` and ``_line``."""

    frame: pd.DataFrame
    rejected: list[dict]  # records that could not be decoded/parsed: row, line, record_id, reasons
    fmt: str

    @property
    def records_in(self) -> int:
        return len(self.frame) + len(self.rejected)


# ---------------------------------------------------------------------------------------------
# the schema (record-level rules); check names are the reason codes


def _is_text(v: Any) -> bool:
    return isinstance(v, str)


class InputRecord(pa.DataFrameModel):
    """pandera schema of one valid record; each check's name is its quarantine reason code."""

    record_id: Series[object] = pa.Field(nullable=False)
    subject_id: Series[object] = pa.Field(nullable=False)
    text: Series[object] = pa.Field(nullable=False)
    region: Series[object] = pa.Field(nullable=False)
    locale: Series[object] = pa.Field(nullable=True)
    created_at: Series[object] = pa.Field(nullable=True)

    class Config:
        strict = False  # extra columns are ignored (and never written anywhere)
        coerce = False

    @pa.check("record_id", name="record_id_not_string", element_wise=True)
    def _record_id_type(cls, v: Any) -> bool:
        return _is_text(v)

    @pa.check("record_id", name="record_id_missing", element_wise=True)
    def _record_id_present(cls, v: Any) -> bool:
        return not _is_text(v) or v.strip() != ""

    @pa.check("record_id", name="record_id_duplicate")
    def _record_id_unique(cls, s: pd.Series) -> pd.Series:
        keys = s.map(lambda v: v if _is_text(v) and v.strip() else None)
        return keys.isna() | ~keys.duplicated(keep=False)

    @pa.check("subject_id", name="subject_id_not_string", element_wise=True)
    def _subject_type(cls, v: Any) -> bool:
        return _is_text(v)

    @pa.check("subject_id", name="subject_id_missing", element_wise=True)
    def _subject_present(cls, v: Any) -> bool:
        return not _is_text(v) or v.strip() != ""

    @pa.check("text", name="text_not_string", element_wise=True)
    def _text_type(cls, v: Any) -> bool:
        return _is_text(v)

    @pa.check("text", name="text_empty", element_wise=True)
    def _text_present(cls, v: Any) -> bool:
        return not _is_text(v) or v.strip() != ""

    @pa.check("region", name="region_unknown", element_wise=True)
    def _region_known(cls, v: Any) -> bool:
        return v in REGIONS

    @pa.check("locale", name="locale_invalid", element_wise=True)
    def _locale_ok(cls, v: Any) -> bool:
        return _is_text(v) and (v == "" or bool(_LOCALE.match(v)))

    @pa.check("created_at", name="created_at_invalid", element_wise=True)
    def _created_at_ok(cls, v: Any) -> bool:
        if not _is_text(v):
            return False
        if v == "":
            return True
        try:
            pd.Timestamp(v)
        except (ValueError, TypeError):
            return False
        return True


_NULL_IS_REASON = {"record_id": "record_id_missing", "subject_id": "subject_id_missing",
                   "text": "text_empty", "region": "region_unknown"}


def validate_batch(raw: RawBatch, *, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a raw batch into (valid records, quarantine); never raises on bad records.

    The valid frame has the columns of :data:`COLUMNS` plus ``row``; the quarantine frame follows
    :data:`QUARANTINE_SCHEMA`.  Failure values reported by pandera (which may be record text) are
    discarded: only the row index and the check name are used.
    """
    frame = raw.frame
    reasons: dict[int, list[str]] = {}
    try:
        InputRecord.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        for column, check, index in zip(cases["column"], cases["check"], cases["index"],
                                        strict=True):
            if index is None or pd.isna(index):
                raise BatchUnusable(
                    f"input schema problem in column {column!r} ({check}); expected columns "
                    f"{', '.join(COLUMNS)}") from None
            code = _NULL_IS_REASON.get(column) if check == "not_nullable" else str(check)
            if code:
                reasons.setdefault(int(index), []).append(code)
    too_long = frame["text"].map(lambda v: _is_text(v) and len(v) > max_text_chars)
    for index in frame.index[too_long]:
        reasons.setdefault(int(index), []).append("text_too_long")

    bad = frame.index.isin(list(reasons))
    quarantined = [
        {"row": int(frame.at[i, "_row"]), "line": _opt_int(frame.at[i, "_line"]),
         "record_id": _clean_id(frame.at[i, "record_id"]),
         "subject_id": _clean_id(frame.at[i, "subject_id"]),
         "reasons": sorted(set(reasons[i]), key=list(REASON_CODES).index)}
        for i in frame.index[bad]
    ]
    quarantine = pd.DataFrame(sorted(raw.rejected + quarantined, key=lambda r: r["row"]),
                              columns=QUARANTINE_SCHEMA.names)
    valid = frame.loc[~bad, ["_row", *COLUMNS]].rename(columns={"_row": "row"})
    for col in OPTIONAL_COLUMNS:
        valid[col] = pd.Series([v if _is_text(v) and v != "" else None for v in valid[col]],
                               index=valid.index, dtype=object)
    return valid.reset_index(drop=True), quarantine


def quarantine_table(quarantine: pd.DataFrame) -> pa_arrow.Table:
    return pa_arrow.Table.from_pandas(quarantine, schema=QUARANTINE_SCHEMA, preserve_index=False)


def _opt_int(v: Any) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def _clean_id(v: Any) -> str | None:
    """A record id fit for the quarantine file: a string that decoded cleanly, else None."""
    if not _is_text(v) or not v.strip() or _has_surrogates(v) or len(v) > 256:
        return None
    return v


# ---------------------------------------------------------------------------------------------
# reading


def detect_format(url: str) -> str:
    lower = url.lower()
    for ext, fmt in FORMATS.items():
        if lower.endswith(ext):
            return fmt
    raise BatchUnusable(
        f"cannot tell the format of {url!r} from its name; use a .csv, .jsonl or .parquet file")


def read_batch(url: str, *, storage_options: dict | None = None) -> RawBatch:
    """Read a batch from ``url`` (any fsspec URL); raise :class:`BatchUnusable` if unusable."""
    fmt = detect_format(url)
    try:
        data = storage.read_bytes(url, storage_options=storage_options)
    except FileNotFoundError:
        raise BatchUnusable(f"input {url!r} does not exist; check the --input path or URL") from None
    except (PermissionError, IsADirectoryError) as err:
        raise BatchUnusable(f"input {url!r} cannot be read ({type(err).__name__}); "
                            "check its permissions and that it is a file") from None
    if not data.strip():
        raise BatchUnusable(f"input {url!r} is empty; it needs a header and at least one record")
    if fmt == "csv":
        frame, rejected = _parse_csv(data, url)
    elif fmt == "jsonl":
        frame, rejected = _parse_jsonl(data, url)
    else:
        frame, rejected = _parse_parquet(data, url), []
    batch = RawBatch(frame=frame, rejected=rejected, fmt=fmt)
    if batch.records_in == 0:
        raise BatchUnusable(f"input {url!r} has no records; add at least one data row")
    return batch


def _has_surrogates(s: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in s)


def _frame(records: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(records, columns=["_row", "_line", *COLUMNS], dtype=object)
    region = frame["region"].map(lambda v: v.strip().lower() if _is_text(v) else v)
    frame["region"] = region.astype(object)
    return frame


def _missing_columns_error(url: str, found: list[str]) -> BatchUnusable:
    missing = [c for c in REQUIRED_COLUMNS if c not in found]
    return BatchUnusable(
        f"input {url!r} lacks required column(s) {', '.join(missing)} (found: "
        f"{', '.join(found) or 'none'}); the batch needs {', '.join(REQUIRED_COLUMNS)} and may "
        f"have {', '.join(OPTIONAL_COLUMNS)}")


def _parse_csv(data: bytes, url: str) -> tuple[pd.DataFrame, list[dict]]:
    # csv's default field limit (128 KiB) would make a long text a parse error; length is
    # judged by the schema instead (text_too_long).
    limit = csv.field_size_limit(max(csv.field_size_limit(), len(data) + 1))
    try:
        return _parse_csv_text(data, url)
    finally:
        csv.field_size_limit(limit)


def _parse_csv_text(data: bytes, url: str) -> tuple[pd.DataFrame, list[dict]]:
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="surrogateescape")
    lines = list(io.StringIO(text, newline=""))
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    header_line = lines[first]
    if _has_surrogates(header_line):
        raise BatchUnusable(f"the header of {url!r} is not UTF-8; save the file as UTF-8")
    header = [h.strip() for h in next(csv.reader([header_line]))]
    if len(set(header)) != len(header):
        raise BatchUnusable(f"the header of {url!r} repeats a column name; name each column once")
    if any(c not in header for c in REQUIRED_COLUMNS):
        raise _missing_columns_error(url, header)

    records: list[dict] = []
    rejected: list[dict] = []
    i, row = first + 1, 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        row += 1
        start, consumed = i, 0

        def feed(start: int = start):
            nonlocal consumed
            for j in range(start, len(lines)):
                consumed += 1
                yield lines[j]

        try:
            fields = next(csv.reader(feed(), strict=True))
        except (csv.Error, StopIteration):
            fields = None
        if fields is None or len(fields) != len(header):
            # A broken quote can swallow the rest of the file: reject this line and go on
            # from the next physical line.
            rejected.append({"row": row, "line": start + 1, "record_id": None,
                             "subject_id": None, "reasons": ["malformed_row"]})
            i = start + 1
            continue
        values = dict(zip(header, fields, strict=True))
        record = {"_row": row, "_line": start + 1, **{c: values.get(c) for c in COLUMNS}}
        if any(_has_surrogates(f) for f in fields):
            rejected.append({"row": row, "line": start + 1,
                             "record_id": _clean_id(record["record_id"]),
                             "subject_id": _clean_id(record["subject_id"]),
                             "reasons": ["undecodable_utf8"]})
        else:
            records.append(record)
        i = start + consumed
    return _frame(records), rejected


def _parse_jsonl(data: bytes, url: str) -> tuple[pd.DataFrame, list[dict]]:
    records: list[dict] = []
    rejected: list[dict] = []
    seen_columns: set[str] = set()
    row = 0
    for number, raw_line in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        if not raw_line.strip():
            continue
        row += 1
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError:
            rejected.append({"row": row, "line": number, "record_id": None, "subject_id": None,
                             "reasons": ["undecodable_utf8"]})
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            rejected.append({"row": row, "line": number, "record_id": None, "subject_id": None,
                             "reasons": ["malformed_row"]})
            continue
        seen_columns.update(obj)
        records.append({"_row": row, "_line": number, **{c: obj.get(c) for c in COLUMNS}})
    if records and any(c not in seen_columns for c in REQUIRED_COLUMNS):
        raise _missing_columns_error(url, sorted(seen_columns))
    return _frame(records), rejected


def _parse_parquet(data: bytes, url: str) -> pd.DataFrame:
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa_arrow.ArrowException, OSError) as err:
        raise BatchUnusable(f"input {url!r} is not a readable Parquet file ({type(err).__name__}); "
                            "check the file or export it again") from None
    names = table.schema.names
    if any(c not in names for c in REQUIRED_COLUMNS):
        raise _missing_columns_error(url, names)
    columns: dict[str, list] = {}
    for name in COLUMNS:
        if name not in names:
            columns[name] = [None] * table.num_rows
            continue
        typ = table.schema.field(name).type
        stringy = pa_arrow.types.is_string(typ) or pa_arrow.types.is_large_string(typ) \
            or pa_arrow.types.is_null(typ)
        if name == "created_at" and pa_arrow.types.is_timestamp(typ):
            columns[name] = [None if v is None else v.isoformat()
                             for v in table.column(name).to_pylist()]
        elif stringy:
            columns[name] = table.column(name).to_pylist()
        else:
            raise BatchUnusable(
                f"Parquet column {name!r} of {url!r} has type {typ}, expected string; "
                "write the column as strings")
    n = table.num_rows
    records = [{"_row": k + 1, "_line": None, **{c: columns[c][k] for c in COLUMNS}}
               for k in range(n)]
    return _frame(records)
