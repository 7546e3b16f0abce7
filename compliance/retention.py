"""Retention policies per data category x regime, and the cleanup they drive.

Defaults (days): inputs 30, results 365, quarantine 30, exports 30 (access/portability zips,
counted from the request's close), audit 2192 (6 years).  A row in
``retention_policies`` overrides a default for one regime, or for every regime with regime
``"*"``.  A run's files count from the run's start; a run's regime follows its region (europe:
GDPR, americas: CCPA, apac: PDPA).  Cleanup is idempotent: a deleted file is marked on its run
and never counted again.  A dry run reports the same counts and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from compliance import audit, files, metrics
from compliance.errors import ComplianceError
from compliance.models import DataSubjectRequest, InferenceRun, Regime, RetentionPolicy
from compliance.runs import INPUTS, QUARANTINE, REGION_REGIME, RESULTS, WORK, run_files

AUDIT, EXPORTS = "audit", "exports"
DEFAULT_DAYS = {INPUTS: 30, RESULTS: 365, QUARANTINE: 30, EXPORTS: 30, AUDIT: 2192}
ANY = "*"
_DELETED_COLUMN = {
    RESULTS: "results_deleted_at",
    QUARANTINE: "quarantine_deleted_at",
    INPUTS: "input_deleted_at",
}


def set_policy(
    session: Session, category: str, days: int, *, regime: str = ANY, actor: str = "smt"
) -> RetentionPolicy:
    if category not in DEFAULT_DAYS:
        raise ComplianceError(f"unknown data category {category!r}; use {sorted(DEFAULT_DAYS)}")
    if regime != ANY:
        Regime(regime)
    if days < 1:
        raise ComplianceError("a retention period is at least 1 day")
    policy = session.execute(
        select(RetentionPolicy).where(
            RetentionPolicy.category == category, RetentionPolicy.regime == regime
        )
    ).scalar_one_or_none()
    if policy is None:
        policy = RetentionPolicy(category=category, regime=regime, days=days)
        session.add(policy)
    policy.days = days
    session.flush()
    audit.append(
        session,
        action="retention.policy",
        object_type="retention_policy",
        object_id=f"{category}:{regime}",
        details={"days": days},
        actor=actor,
    )
    return policy


def policy_days(session: Session, category: str, regime: str) -> int:
    rows = {
        p.regime: p.days
        for p in session.execute(
            select(RetentionPolicy).where(RetentionPolicy.category == category)
        ).scalars()
    }
    return rows.get(regime, rows.get(ANY, DEFAULT_DAYS[category]))


@dataclass(kw_only=True)
class RetentionReport:
    dry_run: bool
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DEFAULT_DAYS, 0))
    ran_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "deleted": self.deleted, "ran_at": self.ran_at.isoformat()}


def run(
    session: Session, *, dry_run: bool, now: datetime | None = None, actor: str = "smt"
) -> RetentionReport:
    """Delete (or, in a dry run, count) everything past its retention period."""
    now = now or datetime.now(UTC)
    report = RetentionReport(dry_run=dry_run, ran_at=now)
    for run_row in session.execute(select(InferenceRun).order_by(InferenceRun.run_id)).scalars():
        regime = REGION_REGIME[run_row.region].value if run_row.region in REGION_REGIME else ANY
        for f in run_files(run_row):
            work = f.category.startswith(WORK)
            category = INPUTS if work else f.category  # work files copy the input: same period
            if run_row.started_at + timedelta(days=policy_days(session, category, regime)) > now:
                continue
            if dry_run:
                report.deleted[category] += int(files.exists(f.url))
                continue
            report.deleted[category] += int(files.delete(f.url))
            if not work:  # work files are found by listing: once deleted, they are gone
                setattr(run_row, _DELETED_COLUMN[f.category], now)
    _exports(session, report, now)
    audit_cut = now - timedelta(days=policy_days(session, AUDIT, ANY))
    if dry_run:
        report.deleted[AUDIT] = audit.count_before(session, audit_cut)
        return report
    report.deleted[AUDIT] = audit.prune_before(session, audit_cut)
    session.flush()
    audit.append(
        session,
        action="retention.run",
        object_type="retention",
        object_id=now.date().isoformat(),
        details={"deleted": report.deleted},
        actor=actor,
        now=now,
    )
    for category, n in report.deleted.items():
        if n:
            metrics.RETENTION_DELETIONS.labels(category=category).inc(n)
    return report


def _exports(session: Session, report: RetentionReport, now: datetime) -> None:
    """Access/portability exports past retention, counted from the request's close."""
    closed = session.execute(
        select(DataSubjectRequest)
        .where(DataSubjectRequest.closed_at.is_not(None))
        .order_by(DataSubjectRequest.id)
    ).scalars()
    for request in closed:
        url = request.result.get("export")
        if not url or request.result.get("export_deleted_at"):
            continue
        closed_at = request.closed_at or now
        if closed_at + timedelta(days=policy_days(session, EXPORTS, request.regime)) > now:
            continue
        if report.dry_run:
            report.deleted[EXPORTS] += int(files.exists(url))
            continue
        report.deleted[EXPORTS] += int(files.delete(url))
        request.result = {**request.result, "export_deleted_at": now.isoformat()}
