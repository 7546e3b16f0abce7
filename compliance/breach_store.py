"""Breach incidents in the compliance store: one state machine, deadlines kept in sync.

Every status change goes through :func:`transition`, which checks :data:`TRANSITIONS`, applies
the event's changes, recomputes the deadlines (``compliance.breach_deadlines``), bumps the row
version (a concurrent writer gets ``ConcurrentUpdateError``) and appends the audit entry, all
in the caller's transaction.  Deadline marks (met, missed) go through :func:`mark_deadline`.

    (new) --report--> reported --assess--> assessed --notify--> notified --notify--> notified
                       |   ^ update           | ^ assess/update     |   (Art. 33(4) phases)
                       +------ close ---------+-------- close ------+--> closed

Until an incident is assessed its risk counts as medium: authority clocks run, notices to
subjects wait for the assessment.  Audit entries carry ids, codes and counts, never subject ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from compliance import audit
from compliance.breach_deadlines import (
    BreachFacts,
    Policy,
    Regime,
    RiskLevel,
    assess_risk,
    compute_deadlines,
    parse_regime,
    regimes_for_jurisdictions,
)
from compliance.breach_models import BreachDeadline, BreachIncident, BreachSubject
from compliance.errors import (
    ComplianceError,
    ConcurrentUpdateError,
    InvalidTransitionError,
    NotFoundError,
)
from compliance.models import Subject
from mpc.errors import InputError


class BreachStatus(StrEnum):
    REPORTED = "reported"
    ASSESSED = "assessed"
    NOTIFIED = "notified"
    CLOSED = "closed"


class BreachEvent(StrEnum):
    REPORT = "report"
    UPDATE = "update"
    ASSESS = "assess"
    NOTIFY = "notify"
    CLOSE = "close"


B, E = BreachStatus, BreachEvent
TRANSITIONS: dict[tuple[BreachStatus | None, BreachEvent], BreachStatus] = {
    (None, E.REPORT): B.REPORTED,
    (B.REPORTED, E.UPDATE): B.REPORTED,
    (B.ASSESSED, E.UPDATE): B.ASSESSED,
    (B.NOTIFIED, E.UPDATE): B.NOTIFIED,
    (B.REPORTED, E.ASSESS): B.ASSESSED,
    (B.ASSESSED, E.ASSESS): B.ASSESSED,
    (B.NOTIFIED, E.ASSESS): B.NOTIFIED,
    (B.ASSESSED, E.NOTIFY): B.NOTIFIED,
    (B.NOTIFIED, E.NOTIFY): B.NOTIFIED,
    (B.REPORTED, E.CLOSE): B.CLOSED,
    (B.ASSESSED, E.CLOSE): B.CLOSED,
    (B.NOTIFIED, E.CLOSE): B.CLOSED,
}
NEEDS_REASON = frozenset({E.CLOSE})
RECOMPUTES = frozenset({E.REPORT, E.UPDATE, E.ASSESS})
# Fields each event may change (anything else is refused, so a typo cannot pass silently).
FACT_FIELDS = frozenset(
    {
        "nature",
        "contact",
        "occurred_at",
        "regions",
        "regimes",
        "affected_subjects",
        "affected_records",
        "affected_by_regime",
        "categories",
        "measures",
    }
)
ASSESS_FIELDS = frozenset(
    {
        "likelihood",
        "severity",
        "risk_level",
        "high_risk",
        "encrypted",
        "risk_removed",
        "disproportionate_effort",
        "unlawful_purpose",
        "assessed_at",
    }
)
ALLOWED_CHANGES: dict[BreachEvent, frozenset[str]] = {
    E.REPORT: FACT_FIELDS | ASSESS_FIELDS | {"aware_at"},
    E.UPDATE: FACT_FIELDS,
    E.ASSESS: ASSESS_FIELDS,
    E.NOTIFY: frozenset({"phase", "late_reasons"}),
    E.CLOSE: frozenset(),
}


def facts_of(incident: BreachIncident) -> BreachFacts:
    return BreachFacts(
        aware_at=incident.aware_at,
        regimes=frozenset(Regime(r) for r in incident.regimes),
        affected=incident.affected_subjects,
        risk=RiskLevel(incident.risk_level) if incident.risk_level else RiskLevel.MEDIUM,
        encrypted=incident.encrypted,
        risk_removed=incident.risk_removed,
        disproportionate_effort=incident.disproportionate_effort,
        assessed_at=incident.assessed_at,
        unlawful_purpose=incident.unlawful_purpose,
        affected_by_regime={Regime(k): v for k, v in incident.affected_by_regime.items()},
    )


def sync_deadlines(incident: BreachIncident, policy: Policy | None = None) -> None:
    """Recompute the deadlines; keep met/missed marks; drop rows no longer owed unless met."""
    plan = compute_deadlines(facts_of(incident), policy)
    rows = {(d.regime, d.obligation): d for d in incident.deadlines}
    wanted = set()
    for d in plan.deadlines:
        key = (d.regime.value, d.obligation.value)
        wanted.add(key)
        row = rows.get(key)
        if row is None:
            row = BreachDeadline(regime=key[0], obligation=key[1])
            incident.deadlines.append(row)
        row.due_at, row.statutory, row.basis, row.tz = d.due_at, d.statutory, d.basis, d.tz
        if row.missed_at is not None and row.due_at is not None and row.due_at > row.missed_at:
            row.missed_at = None  # the deadline moved (e.g. PDPA decision) and is open again
    for key, row in rows.items():
        if key not in wanted and row.met_at is None:
            incident.deadlines.remove(row)
    incident.exemptions = [
        {"regime": x.regime.value, "obligation": x.obligation.value, "reason": x.reason.value}
        for x in plan.exemptions
    ]


def transition(
    session: Session,
    incident: BreachIncident,
    event: BreachEvent | str,
    *,
    actor: str,
    changes: dict[str, Any] | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    policy: Policy | None = None,
    now: datetime | None = None,
) -> BreachIncident:
    """The only place an incident's status changes; nothing changes when the event is refused."""
    event = BreachEvent(event)
    now = now or datetime.now(UTC)
    current = BreachStatus(incident.status) if incident.status else None
    target = TRANSITIONS.get((current, event))
    if target is None:
        allowed = sorted(e.value for (s, e) in TRANSITIONS if s == current)
        raise InvalidTransitionError(
            f"breach {incident.id}: cannot {event.value} an incident that is {current};"
            f" allowed: {', '.join(allowed) or 'nothing (closed)'}"
        )
    if event in NEEDS_REASON and not reason:
        raise InvalidTransitionError(f"{event.value} needs a reason (it is audited)")
    changes = dict(changes or {})
    refused = sorted(set(changes) - ALLOWED_CHANGES[event])
    if refused:
        raise InvalidTransitionError(f"{event.value} cannot change {refused}")
    for name, value in changes.items():
        setattr(incident, name, value)
    incident.status = target.value
    incident.updated_at = now
    if event is E.REPORT:
        incident.created_at = now
        session.add(incident)
    if event in RECOMPUTES:
        sync_deadlines(incident, policy)
    try:
        session.flush()
    except StaleDataError as exc:
        raise ConcurrentUpdateError(
            f"breach {incident.id} was changed by another worker; reload it and retry"
        ) from exc
    if event is E.ASSESS:
        for d in incident.deadlines:
            if d.obligation == "assessment":
                mark_deadline(session, d, "met", actor=actor, now=now)
    audit.append(
        session,
        action=f"breach.{event.value}",
        object_type="breach",
        object_id=incident.id,
        details={
            "from": current.value if current else None,
            "to": target.value,
            "changed": sorted(changes),
            "regimes": sorted(incident.regimes),
            "deadlines": len(incident.deadlines),
            **({"reason": reason} if reason else {}),
            **(details or {}),
        },
        actor=actor,
        now=now,
    )
    return incident


def mark_deadline(
    session: Session, deadline: BreachDeadline, mark: str, *, actor: str, now: datetime
) -> None:
    """Mark a deadline ``met`` or ``missed`` (once) and audit it."""
    if mark == "met" and deadline.met_at is None:
        deadline.met_at = now
    elif mark == "missed" and deadline.missed_at is None and deadline.met_at is None:
        deadline.missed_at = now
    else:
        return
    session.flush()
    audit.append(
        session,
        action=f"breach.deadline_{mark}",
        object_type="breach",
        object_id=deadline.breach_id,
        details={
            "regime": deadline.regime,
            "obligation": deadline.obligation,
            "due_at": deadline.due_at.isoformat() if deadline.due_at else None,
        },
        actor=actor,
        now=now,
    )


def get_incident(session: Session, breach_id: str) -> BreachIncident:
    incident = session.get(BreachIncident, breach_id)
    if incident is None:
        raise NotFoundError(
            f"no breach {breach_id!r} in the store; use the id `smt breach report` printed"
        )
    return incident


def _risk_changes(
    likelihood: int | None, severity: int | None, high_risk: bool | None
) -> dict[str, Any]:
    if likelihood is None and severity is None and high_risk is None:
        return {}
    if (likelihood is None) != (severity is None):
        raise InputError("give both likelihood and severity (1-4 each), or neither")
    level = assess_risk(likelihood, severity) if likelihood and severity else RiskLevel.MEDIUM
    if high_risk:
        level = RiskLevel.HIGH
    return {
        "likelihood": likelihood,
        "severity": severity,
        "risk_level": level.value,
        "high_risk": level is RiskLevel.HIGH,
    }


def report_breach(
    session: Session,
    *,
    aware_at: datetime,
    nature: str,
    contact: str,
    regimes: Iterable[str] = (),
    subject_ids: Iterable[str] = (),
    affected: int | None = None,
    records: int = 0,
    regions: Iterable[str] = (),
    categories: Iterable[str] = (),
    measures: Iterable[str] = (),
    occurred_at: datetime | None = None,
    likelihood: int | None = None,
    severity: int | None = None,
    high_risk: bool | None = None,
    encrypted: bool = False,
    actor: str = "smt",
    policy: Policy | None = None,
    now: datetime | None = None,
) -> BreachIncident:
    """Register an incident and its deadlines.  Regimes: those given plus those that follow
    from the affected subjects' countries.  Risk facts given here count as the assessment."""
    now = now or datetime.now(UTC)
    if aware_at.tzinfo is None:
        raise InputError("aware_at must carry a time zone, e.g. 2026-10-23T10:00:00+02:00")
    ids = sorted(set(subject_ids))
    subjects = [session.get(Subject, s) for s in ids]
    if any(s is None for s in subjects):
        raise NotFoundError("an affected subject id is not in the compliance store; add it first")
    jurisdictions = [
        f"{s.country}-{s.subdivision}" if s.subdivision else s.country
        for s in subjects
        if s is not None and s.country
    ]
    found = {parse_regime(r) for r in regimes} | regimes_for_jurisdictions(jurisdictions)
    if not found:
        raise InputError("no regime applies: give --regime or affected subjects with a country")
    count = len(ids) if affected is None else affected
    if count < len(ids):
        raise InputError(f"affected ({count}) is below the {len(ids)} subject ids given")
    incident = BreachIncident(id=f"BR-{uuid.uuid4().hex[:12]}", phase=0, exemptions=[])
    incident.subjects = [BreachSubject(subject_id=s) for s in ids]
    risk = _risk_changes(likelihood, severity, high_risk)
    changes: dict[str, Any] = {
        "aware_at": aware_at.astimezone(UTC),
        "nature": nature,
        "contact": contact,
        "occurred_at": occurred_at,
        "regions": sorted(set(regions)),
        "regimes": sorted(r.value for r in found),
        "affected_subjects": count,
        "affected_records": records,
        "affected_by_regime": {},
        "categories": list(categories),
        "measures": list(measures),
        "encrypted": encrypted,
        "likelihood": None,
        "severity": None,
        "risk_level": None,
        "high_risk": False,
        "risk_removed": False,
        "disproportionate_effort": False,
        "unlawful_purpose": False,
        **risk,
        **({"assessed_at": now} if risk else {}),
    }
    transition(session, incident, E.REPORT, actor=actor, changes=changes, policy=policy, now=now)
    if risk:
        transition(
            session,
            incident,
            E.ASSESS,
            actor=actor,
            details={"at_report": True},
            policy=policy,
            now=now,
        )
    return incident


def assess_breach(
    session: Session,
    incident: BreachIncident,
    *,
    likelihood: int,
    severity: int,
    high_risk: bool | None = None,
    encrypted: bool | None = None,
    risk_removed: bool | None = None,
    disproportionate_effort: bool | None = None,
    unlawful_purpose: bool | None = None,
    actor: str = "smt",
    policy: Policy | None = None,
    now: datetime | None = None,
) -> BreachIncident:
    now = now or datetime.now(UTC)
    changes = _risk_changes(likelihood, severity, high_risk) | {"assessed_at": now}
    for name, value in (
        ("encrypted", encrypted),
        ("risk_removed", risk_removed),
        ("disproportionate_effort", disproportionate_effort),
        ("unlawful_purpose", unlawful_purpose),
    ):
        if value is not None:
            changes[name] = value
    return transition(
        session,
        incident,
        E.ASSESS,
        actor=actor,
        changes=changes,
        details={"risk": changes["risk_level"]},
        policy=policy,
        now=now,
    )


def open_deadlines(session: Session) -> list[BreachDeadline]:
    """Deadlines neither met nor already marked missed, of incidents that are not closed."""
    return list(
        session.execute(
            select(BreachDeadline)
            .join(BreachIncident, BreachIncident.id == BreachDeadline.breach_id)
            .where(
                BreachIncident.status != B.CLOSED.value,
                BreachDeadline.met_at.is_(None),
                BreachDeadline.missed_at.is_(None),
            )
            .order_by(BreachDeadline.due_at, BreachDeadline.id)
        ).scalars()
    )


def describe(incident: BreachIncident) -> dict[str, Any]:
    """The JSON the CLI prints: ids, status, deadlines (local ISO times), exemptions."""
    from zoneinfo import ZoneInfo

    def iso(d: BreachDeadline) -> str | None:
        return d.due_at.astimezone(ZoneInfo(d.tz)).isoformat() if d.due_at else None

    return {
        "id": incident.id,
        "status": incident.status,
        "regimes": incident.regimes,
        "risk": incident.risk_level,
        "deadlines": [
            {
                "regime": d.regime,
                "obligation": d.obligation,
                "due_at": iso(d),
                "statutory": d.statutory,
                "basis": d.basis,
                "state": "met" if d.met_at else "missed" if d.missed_at else "open",
            }
            for d in incident.deadlines
        ],
        "exemptions": incident.exemptions,
        "notices": len(incident.notices),
    }


__all__ = [
    "BreachEvent",
    "BreachStatus",
    "ComplianceError",
    "TRANSITIONS",
    "assess_breach",
    "describe",
    "facts_of",
    "get_incident",
    "mark_deadline",
    "open_deadlines",
    "report_breach",
    "sync_deadlines",
    "transition",
]
