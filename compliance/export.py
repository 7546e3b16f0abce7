"""Access / portability / CCPA-know export: everything held on one subject, as JSON and CSV in
one zip (``export.json`` plus one CSV per section)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import datetime
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import select
from sqlalchemy.orm import Session

from compliance import files
from compliance.audit import subject_ref
from compliance.models import AuditEntry, DataSubjectRequest, RequestType
from compliance.requests import describe
from compliance.runs import all_runs, run_files
from compliance.subjects import describe_subject, get_subject

KNOW_LOOKBACK = relativedelta(months=12)  # CCPA 1798.130(a)(2)(B)


def collect(session: Session, request: DataSubjectRequest) -> dict[str, Any]:
    """Every record the platform holds on the request's subject."""
    if request.subject_id is None:
        raise ValueError("the request's subject was erased; nothing to export")
    subject_id = request.subject_id
    subject = get_subject(session, subject_id)
    since = None
    if request.type == RequestType.KNOW:
        since = request.received_at - KNOW_LOOKBACK
    results: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    runs_seen: list[dict[str, Any]] = []
    for run in all_runs(session, since=since):
        found = 0
        for f in run_files(run):
            if f.category == "inputs" or (f.category.startswith("work/") and "shards/" not in f.category):
                continue  # the subject's own input text (and its working copies) not returned twice
            rows = files.subject_rows(f.url, subject_id)
            for row in rows:
                row["run_id"] = run.run_id
            in_results = f.category == "results" or f.category.startswith("work/shards/")
            (results if in_results else quarantine).extend(rows)
            found += len(rows)
        if found:
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
        "inference_results": results,
        "quarantine": quarantine,
        "processing_history": [
            {"at": e.recorded_at.isoformat(), "action": e.action, "object": e.object_type}
            for e in history
        ],
        "lookback_since": since.isoformat() if since else None,
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
        zf.writestr(zipfile.ZipInfo("export.json", stamp), json.dumps(doc, indent=2, default=str))
        for section in (
            "consents",
            "requests",
            "processing_runs",
            "inference_results",
            "quarantine",
            "processing_history",
        ):
            zf.writestr(zipfile.ZipInfo(f"{section}.csv", stamp), _csv(data[section]))
    return buf.getvalue()
