"""Request handling in short transactions, one per call: what tasks and the CLI call.

Each function opens its own transaction from a session factory, so a step's store changes and
its ``dsr_steps`` row commit together, and a failure rolls back only that step.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from compliance import execution, requests
from compliance.db import transaction
from compliance.errors import ComplianceError
from compliance.models import RequestStatus, RequestType


def claim(factory: sessionmaker[Session], request_id: str, *, worker: str) -> list[str] | None:
    """Start the request for ``worker``; returns its remaining steps, or None when it is taken,
    already closed, or otherwise not claimable."""
    with transaction(factory) as session:
        request = requests.claim(session, request_id, worker=worker)
        if request is None:
            return None
        done = execution.done_steps(session, request_id)
        return [s for s in execution.plan(session, request) if s not in done]


def run_step(
    factory: sessionmaker[Session], request_id: str, step: str, *, export_dir: str, actor: str
) -> dict[str, Any]:
    """Run one step unless it is already done (then returns ``{"skipped": True}``)."""
    with transaction(factory) as session:
        request = requests.get_request(session, request_id)
        if request.status != RequestStatus.IN_PROGRESS:
            raise ComplianceError(
                f"request {request_id} is {request.status}, not in_progress; claim it first"
            )
        if step in execution.done_steps(session, request_id):
            return {"skipped": True}
        return execution.run_step(session, request, step, export_dir=export_dir, actor=actor)


def complete(
    factory: sessionmaker[Session], request_id: str, *, actor: str, summary: dict[str, Any]
) -> dict[str, Any]:
    with transaction(factory) as session:
        request = requests.get_request(session, request_id)
        requests.transition(session, request, "complete", actor=actor, details=summary)
        return requests.describe(request)


def fail(factory: sessionmaker[Session], request_id: str, *, actor: str, reason: str) -> None:
    with transaction(factory) as session:
        request = requests.get_request(session, request_id)
        if request.status == RequestStatus.IN_PROGRESS:
            requests.transition(session, request, "fail", actor=actor, reason=reason)


def preview(factory: sessionmaker[Session], request_id: str) -> dict[str, Any]:
    """Dry run: what the request would do, changing nothing."""
    with factory() as session:
        request = requests.get_request(session, request_id)
        report: dict[str, Any] = {
            "id": request.id,
            "status": request.status,
            "dry_run": True,
            "steps": execution.plan(session, request) if request.subject_id else [],
        }
        if RequestType(request.type) in execution.ERASURE_TYPES and request.subject_id:
            report["would_erase"] = execution.erasure_preview(session, request)
        return report


def status(factory: sessionmaker[Session], request_id: str) -> dict[str, Any]:
    with factory() as session:
        request = requests.get_request(session, request_id)
        report = requests.describe(request)
        report["steps_done"] = sorted(execution.done_steps(session, request_id))
        return report


def execute(
    factory: sessionmaker[Session], request_id: str, *, export_dir: str, worker: str
) -> dict[str, Any] | None:
    """The whole request without Prefect (the flow orders the same calls as tasks)."""
    steps = claim(factory, request_id, worker=worker)
    if steps is None:
        return None
    summary: dict[str, Any] = {}
    try:
        for step in steps:
            summary[step] = run_step(factory, request_id, step, export_dir=export_dir, actor=worker)
    except Exception as exc:
        fail(factory, request_id, actor=worker, reason=type(exc).__name__)
        raise
    return complete(factory, request_id, actor=worker, summary=_counts(summary))


def _counts(summary: dict[str, Any]) -> dict[str, Any]:
    """Numbers only, for the audit entry (no URLs, no ids of other systems)."""
    removed = sum(d.get("rows_removed", 0) for d in summary.values() if isinstance(d, dict))
    return {"steps": len(summary), "rows_removed": removed}
