"""Executing a data-subject request as ordered, idempotent steps (resumable).

``plan`` lists the steps of a request; ``run_step`` runs one and records it in ``dsr_steps`` in
the same transaction as its store changes, so a resumed run skips what is done.  File changes
(rewrites, deletions) cannot join that transaction; they are idempotent instead (erasing twice
removes nothing the second time).

Erasure order: every run file, earlier exports of the subject, a scan of every file, then the
compliance store (subject, consents, links from requests) with a scan of the store, all in one
transaction.  The audit log keeps its entries; they carry only ``subject_ref``, which cannot be
linked to the subject once its salt is gone with the subject row.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from compliance import export, files, restriction, suppression
from compliance.audit import rowcount
from compliance.errors import ComplianceError, ErasureIncompleteError
from compliance.models import (
    Consent,
    DataSubjectRequest,
    RequestStep,
    RequestType,
    Subject,
)
from compliance.runs import all_runs, run_files
from compliance.subjects import get_subject, rectify, set_flags

T = RequestType
log = logging.getLogger(__name__)
EXPORT_TYPES = {T.ACCESS, T.PORTABILITY, T.KNOW}
ERASURE_TYPES = {T.ERASURE, T.DELETE}


def plan(session: Session, request: DataSubjectRequest) -> list[str]:
    rtype = RequestType(request.type)
    if rtype in EXPORT_TYPES:
        return ["export"]
    if rtype in ERASURE_TYPES:
        steps = [
            f"erase:{f.run_id}:{f.category}" for run in all_runs(session) for f in run_files(run)
        ]
        return [*steps, "erase:exports", "scan:files", "erase:store"]
    if rtype in (T.RECTIFICATION, T.CORRECT):
        return ["rectify"]
    return ["flags"]  # restriction, objection, opt-out


def done_steps(session: Session, request_id: str) -> set[str]:
    return set(
        session.execute(select(RequestStep.name).where(RequestStep.request_id == request_id))
        .scalars()
        .all()
    )


def export_url(export_dir: str, request_id: str) -> str:
    return f"{export_dir.rstrip('/')}/{request_id}.zip"


def _subject_id(request: DataSubjectRequest) -> str:
    if request.subject_id is None:
        raise ComplianceError(f"request {request.id}: its subject was already erased")
    return request.subject_id


def _file_url(session: Session, run_id: str, category: str) -> str | None:
    for run in all_runs(session):
        if run.run_id == run_id:
            for f in run_files(run):
                if f.category == category:
                    return f.url
    return None  # deleted by retention meanwhile: nothing left to erase


def _previous_exports(session: Session, subject_id: str) -> list[str]:
    rows = session.execute(
        select(DataSubjectRequest.result).where(DataSubjectRequest.subject_id == subject_id)
    ).scalars()
    return [r["export"] for r in rows if r and r.get("export")]


def erasure_preview(session: Session, request: DataSubjectRequest) -> dict[str, Any]:
    """Dry run of an erasure: rows that would be removed per file; nothing is changed."""
    subject_id = _subject_id(request)
    rows = {
        f"{f.run_id}:{f.category}": files.count_subject_rows(f.url, subject_id)
        for run in all_runs(session)
        for f in run_files(run)
    }
    return {
        "rows": rows,
        "exports": sum(files.exists(u) for u in _previous_exports(session, subject_id)),
        "store": {"subject": session.get(Subject, subject_id) is not None},
    }


def run_step(
    session: Session,
    request: DataSubjectRequest,
    step: str,
    *,
    export_dir: str,
    actor: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Run one step in the caller's transaction and record it as done."""
    now = now or datetime.now(UTC)
    detail = _STEP_FUNCS[step.split(":", 1)[0]](session, request, step, export_dir, actor, now)
    session.add(RequestStep(request_id=request.id, name=step, finished_at=now, detail=detail))
    session.flush()
    return detail


def _export(session, request, step, export_dir, actor, now) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    data = export.collect(session, request)
    url = export_url(export_dir, request.id)
    files.write_bytes_atomic(url, export.to_zip(data, generated_at=now))
    request.result = {**request.result, "export": url}
    return {
        "export": url,
        "results": len(data["inference_results"]),
        "quarantine": len(data["quarantine"]),
    }


def _erase(session, request, step, export_dir, actor, now) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    subject_id = _subject_id(request)
    if step == "erase:exports":
        removed = sum(files.delete(u) for u in _previous_exports(session, subject_id))
        return {"exports_deleted": removed}
    if step == "erase:store":
        return _erase_store(session, request, subject_id, actor, now)
    _, run_id, category = step.split(":", 2)
    url = _file_url(session, run_id, category)
    removed = files.erase_subject(url, subject_id) if url else 0
    return {"rows_removed": removed}


def _scan(session, request, step, export_dir, actor, now) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    subject_id = _subject_id(request)
    left = {
        f"{f.run_id}:{f.category}": n
        for run in all_runs(session)
        for f in run_files(run)
        if (n := files.count_subject_rows(f.url, subject_id))
    }
    left.update(
        {"exports": n}
        if (n := sum(files.exists(u) for u in _previous_exports(session, subject_id)))
        else {}
    )
    if left:
        raise ErasureIncompleteError(
            f"request {request.id}: rows of the subject remain in {sorted(left)};"
            " run the request again to erase them"
        )
    unlinkable = sorted(
        f"{f.run_id}:{f.category}"
        for run in all_runs(session)
        for f in run_files(run)
        if files.has_subject_column(f.url) is False
    )
    if unlinkable:
        log.warning(
            "request %s: %d file(s) carry no subject_id column and could not be searched: %s",
            request.id,
            len(unlinkable),
            unlinkable,
        )
    return {"files_clean": True, "unlinkable_files": unlinkable}


def _erase_store(
    session: Session, request: DataSubjectRequest, subject_id: str, actor: str, now: datetime
) -> dict[str, Any]:
    subject = session.get(Subject, subject_id)
    kept: list[str] = []
    if subject is not None:
        # an objection, opt-out or withdrawn consent must outlive the erasure (keyed hash only)
        kept = suppression.record(session, subject, actor=actor, now=now)
    consents = rowcount(session.execute(delete(Consent).where(Consent.subject_id == subject_id)))
    unlinked = rowcount(
        session.execute(
            update(DataSubjectRequest)
            .where(DataSubjectRequest.subject_id == subject_id, DataSubjectRequest.id != request.id)
            .values(subject_id=None, payload={}, result={})
            .execution_options(synchronize_session=False)
        )
    )
    if subject is not None:
        session.delete(subject)  # its salt goes with it: audit entries become unlinkable
    request.subject_id = None
    request.payload = {}
    session.flush()
    left = (
        session.execute(
            select(func.count()).select_from(Subject).where(Subject.id == subject_id)
        ).scalar_one()
        + session.execute(
            select(func.count()).select_from(Consent).where(Consent.subject_id == subject_id)
        ).scalar_one()
        + session.execute(
            select(func.count())
            .select_from(DataSubjectRequest)
            .where(DataSubjectRequest.subject_id == subject_id)
        ).scalar_one()
    )
    if left:
        raise ErasureIncompleteError(f"request {request.id}: the store still holds the subject")
    return {"consents_deleted": consents, "requests_unlinked": unlinked, "suppressed": kept}


def _rectify(session, request, step, export_dir, actor, now) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    subject = get_subject(session, _subject_id(request))
    changes = request.payload.get("changes") or {}
    if not changes:
        raise ComplianceError(
            f"request {request.id}: a rectification needs payload.changes, e.g."
            ' {"changes": {"locale": "fr"}}'
        )
    return {"fields": rectify(session, subject, changes, actor=actor, now=now)}


def _flags(session, request, step, export_dir, actor, now) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    subject = get_subject(session, _subject_id(request))
    flag = {T.RESTRICTION: "restricted", T.OBJECTION: "objected", T.OPT_OUT: "opted_out"}[
        RequestType(request.type)
    ]
    if flag == "restricted":
        restriction.restrict(
            session, subject, restriction.ground(request), basis="GDPR Art. 18(1)", actor=actor,
            now=now,
        )
    else:
        set_flags(session, subject, actor=actor, now=now, reason=f"dsr:{request.id}", **{flag: True})
    return {"flag": flag}


_STEP_FUNCS = {
    "export": _export,
    "erase": _erase,
    "scan": _scan,
    "rectify": _rectify,
    "flags": _flags,
}

__all__ = ["plan", "run_step", "done_steps", "erasure_preview", "export_url"]
