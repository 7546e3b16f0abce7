"""Prometheus metrics of the compliance package.  Labels carry no personal data: only request
type, regime, status and data category."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import Counter, Gauge
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from compliance.models import DataSubjectRequest, Deadline, RequestStatus

DSR_TRANSITIONS = Counter(
    "smt_dsr_requests_total",
    "Data-subject requests entering a status, by type, regime and status",
    ["type", "regime", "status"],
)
DSR_OVERDUE = Gauge(
    "smt_dsr_overdue_requests",
    "Open data-subject requests past a deadline, by regime and obligation",
    ["regime", "obligation"],
)
RETENTION_DELETIONS = Counter(
    "smt_retention_deletions_total",
    "Items deleted by retention cleanup, by data category",
    ["category"],
)

OPEN = (RequestStatus.RECEIVED, RequestStatus.IN_PROGRESS, RequestStatus.FAILED)


def refresh_overdue(session: Session, now: datetime | None = None) -> dict[tuple[str, str], int]:
    """Recompute the overdue gauge from the store; returns {(regime, obligation): count}."""
    now = now or datetime.now(UTC)
    rows = session.execute(
        select(DataSubjectRequest.regime, Deadline.obligation, func.count())
        .join(Deadline, Deadline.request_id == DataSubjectRequest.id)
        .where(
            DataSubjectRequest.status.in_([s.value for s in OPEN]),
            Deadline.met_at.is_(None),
            Deadline.due_at < now,
        )
        .group_by(DataSubjectRequest.regime, Deadline.obligation)
    ).all()
    counts = {(r, o): int(n) for r, o, n in rows}
    DSR_OVERDUE.clear()
    for (regime, obligation), n in counts.items():
        DSR_OVERDUE.labels(regime=regime, obligation=obligation).set(n)
    return counts
