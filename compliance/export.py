"""Access / portability / CCPA-know export: everything held on one subject, as JSON and CSV in
one zip (``export.json``, one CSV per section, ``information.txt``).

Sections: the subject's attributes, consents, requests, ``provided_data`` (the records the
subject provided: input texts, from the run's input copy or, for an unfinished run, its working
copy; Art. 20(1)), inference results, quarantined records, processing history, and the Art. 15
information (``compliance.access_info``) in the subject's language.  The zip is written 0600.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from compliance import access_info, files
from compliance.audit import subject_ref
from compliance.models import AuditEntry, DataSubjectRequest, RequestType
from compliance.requests import describe
from compliance.runs import all_runs, run_files
from compliance.subjects import describe_subject, get_subject

# CCPA "right to know": 1798.130(a)(2)(B) says 12 months, but 11 CCR 7024(h) requires everything
# collected on or after 1 January 2022 (unless impossible or disproportionate): we apply the
# longer one.  The earliest instant that is 1 January 2022 anywhere (UTC+14), so no time zone
# cuts a record off.
KNOW_SINCE = datetime(2022, 1, 1, tzinfo=timezone(timedelta(hours=14)))


def collect(session: Session, request: DataSubjectRequest) -> dict[str, Any]:
    """Every record the platform holds on the request's subject."""
    if request.subject_id is None:
        raise ValueError("the request's subject was erased; nothing to export")
    subject_id = request.subject_id
    subject = get_subject(session, subject_id)
    since = None
    if request.type == RequestType.KNOW:
        since = KNOW_SINCE
    results: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    provided: list[dict[str, Any]] = []
    runs_seen: list[dict[str, Any]] = []
    runs_with_data = []
    for run in all_runs(session, since=since):
        found = 0
        seen_provided: set[str] = set()
        # the input copy first: the working copies (valid/allowed) repeat its rows
        for f in sorted(run_files(run), key=lambda f: f.category != "inputs"):
            rows = files.subject_rows(f.url, subject_id)
            for row in rows:
                row["run_id"] = run.run_id
            if f.category == "inputs" or (
                f.category.startswith("work/") and "shards/" not in f.category
            ):
                # what the subject provided (portability, Art. 20(1)): each record once
                for row in rows:
                    key = str(row.get("record_id", len(seen_provided)))
                    if key not in seen_provided:
                        seen_provided.add(key)
                        provided.append(row)
            else:
                in_results = f.category == "results" or f.category.startswith("work/shards/")
                (results if in_results else quarantine).extend(rows)
            found += len(rows)
        if found:
            runs_with_data.append(run)
            runs_seen.append(
                {
                    "run_id": run.run_id,
                    "region": run.region,
                    "model": run.model,
                    "started_at": run.started_at.isoformat(),
                }
            )
    requests = session.execute(
        select(DataSubjectRequest)
        .where(DataSubjectRequest.subject_id == subject_id)
        .order_by(DataSubjectRequest.received_at)
    ).scalars()
    history = session.execute(
        select(AuditEntry)
        .where(AuditEntry.subject_ref == subject_ref(subject))
        .order_by(AuditEntry.seq)
    ).scalars()
    info = describe_subject(session, subject_id)
    return {
        "subject": {k: v for k, v in info.items() if k not in ("consents", "history")},
        "consents": info["history"],
        "requests": [describe(r) for r in requests],
        "processing_runs": runs_seen,
        "provided_data": provided,
        "inference_results": results,
        "quarantine": quarantine,
        "processing_history": [
            {"at": e.recorded_at.isoformat(), "action": e.action, "object": e.object_type}
            for e in history
        ],
        "lookback_since": since.isoformat() if since else None,
        "information": access_info.information(session, request, subject, runs_with_data),
    }


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if not rows:
        return ""
    fields = sorted({k for row in rows for k in row})
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: json.dumps(v, default=str) if isinstance(v, list | dict) else v
                for k, v in row.items()
            }
        )
    return out.getvalue()


def to_zip(data: dict[str, Any], *, generated_at: datetime) -> bytes:
    buf = io.BytesIO()
    stamp = generated_at.timetuple()[:6]
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        doc = {"generated_at": generated_at.isoformat(), **data}
        zf.writestr(
            zipfile.ZipInfo("export.json", stamp),
            json.dumps(doc, indent=2, default=str, ensure_ascii=False),
        )
        if "information" in data:
            zf.writestr(
                zipfile.ZipInfo("information.txt", stamp), access_info.as_text(data["information"])
            )
        for section in (
            "consents",
            "requests",
            "provided_data",
            "processing_runs",
            "inference_results",
            "quarantine",
            "processing_history",
        ):
            zf.writestr(zipfile.ZipInfo(f"{section}.csv", stamp), _csv(data[section]))
    return buf.getvalue()
