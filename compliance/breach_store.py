"""Breach incidents in the compliance store: one state machine, deadlines kept in sync.

Every status change goes through :func:`transition`, which checks :data:`TRANSITIONS`, applies
the event's changes, recomputes the deadlines (``compliance.breach_deadlines``), bumps the row
version (a concurrent writer gets ``ConcurrentUpdateError``) and appends the audit entry, all
in the caller's transaction.  Deadline marks (met, missed) go through :func:`mark_deadline`;
a deadline done after its due time reads ``late`` (:func:`deadline_state`).  The operations
that call these (report, update, assess, close, list) are in ``compliance.breach_ops``.

    (new) --report--> reported --assess--> assessed --notify--> notified --notify--> notified
                       |   ^ update           | ^ assess/update     |   (Art. 33(4) phases)
                       +------ close ---------+-------- close ------+--> closed

Until an incident is assessed its risk counts as medium: authority clocks run, notices to
subjects wait for the assessment.  Audit entries carry ids, codes and counts, never subject ids.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from compliance import audit
from compliance import breach_checks as checks
from compliance.breach_deadlines import (
    BreachFacts,
    Policy,
    Regime,
    RiskLevel,
    compute_deadlines,
)
from compliance.breach_models import BreachDeadline, BreachIncident
from compliance.errors import (
    ComplianceError,
    ConcurrentUpdateError,
    InvalidTransitionError,
    NotFoundError,
)


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
# Notice audience of a record of subject notices sent by other means (no file; counted)
SUBJECTS_OTHER = "subjects_other"
NEEDS_REASON = frozenset({E.CLOSE})
# NOTIFY recomputes too: California's Attorney General clock and LGPD's complement run from
# the first notices.
RECOMPUTES = frozenset({E.REPORT, E.UPDATE, E.ASSESS, E.NOTIFY})
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
        "cause",
        "prevention",
        "small_agent",
        "occurred_until",
        "occurred_estimated",
        "law_enforcement_delay",
        "third_party_source",
        "identity_services",
        "secondary_damage",
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


def covered_regimes(notice: Any) -> list[str]:
    """The regimes a subject notice (or a record of notices sent by other means) counts for:
    its own, or every regime a fallback notice stands in for (``detail["covers"]``)."""
    return list(notice.detail.get("covers") or [notice.regime])


def _first_notices(incident: BreachIncident, audience: str) -> dict[Regime, datetime]:
    """First notice per regime; for subjects, notices sent by other means count too (the
    stricter reading: California's Attorney General clock starts at the earliest)."""
    audiences = {audience, SUBJECTS_OTHER} if audience == "subject" else {audience}
    first: dict[Regime, datetime] = {}
    for n in incident.notices:
        if n.audience not in audiences or (
            audience == "authority" and n.detail.get("obligation", "authority") != "authority"
        ):
            continue
        for name in covered_regimes(n) if audience == "subject" else [n.regime]:
            r = Regime(name)
            first[r] = min(first.get(r, n.produced_at), n.produced_at)
    return first


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
        pdpa_notifiable_at=incident.pdpa_notifiable_at,
        pdpa_harm_at=incident.pdpa_harm_at,
        unlawful_purpose=incident.unlawful_purpose,
        affected_by_regime={Regime(k): v for k, v in incident.affected_by_regime.items()},
        small_agent=bool(incident.small_agent),
        categories=frozenset(incident.categories or []),
        authority_notified_at=_first_notices(incident, "authority"),
        subjects_notified_at=_first_notices(incident, "subject"),
    )


def sync_deadlines(incident: BreachIncident, policy: Policy | None = None) -> list[str]:
    """Recompute the deadlines, keeping met/missed marks.  A deadline once missed keeps its due
    time and a met one's only moves earlier (a later assessment never reopens a missed
    deadline nor turns a late one into met); one no longer owed is dropped only when it was neither met nor missed, else kept with
    ``owed = False`` (it stays missed or late).  Returns those ``regime/obligation`` kept."""
    facts = facts_of(incident)
    plan = compute_deadlines(facts, policy)
    for d in plan.deadlines:  # PDPA s. 26D(1): remember the first notifiable assessment
        if (d.regime, d.obligation.value) == (Regime.PDPA, "authority") and d.due_at is not None:
            at = incident.assessed_at
            if at is not None and (
                incident.pdpa_notifiable_at is None or at < incident.pdpa_notifiable_at
            ):
                incident.pdpa_notifiable_at = at
        if (d.regime, d.obligation.value) == (Regime.PDPA, "subjects"):
            # s. 26D(2): remember the first assessment that found significant harm
            at = incident.assessed_at
            if incident.high_risk and at is not None and (
                incident.pdpa_harm_at is None or at < incident.pdpa_harm_at
            ):
                incident.pdpa_harm_at = at
    rows = {(d.regime, d.obligation): d for d in incident.deadlines}
    wanted = set()
    for d in plan.deadlines:
        key = (d.regime.value, d.obligation.value)
        wanted.add(key)
        row = rows.get(key)
        if row is None:
            row = BreachDeadline(regime=key[0], obligation=key[1])
            incident.deadlines.append(row)
        row.owed = True
        row.statutory, row.basis, row.tz = d.statutory, d.basis, d.tz
        if row.missed_at is not None:
            pass  # once missed, its due time stays: it is never reopened, only done late
        elif row.met_at is not None and row.due_at is not None:
            # done: its due time may only move earlier (e.g. California's Attorney General
            # clock now counted from the residents' notice), never later (late stays late)
            if d.due_at is not None and d.due_at < row.due_at:
                row.due_at = d.due_at
        else:
            row.due_at = d.due_at
    kept = []
    for key, row in rows.items():
        if key in wanted:
            continue
        if row.met_at is None and row.missed_at is None:
            incident.deadlines.remove(row)
        else:
            row.owed = False
            kept.append("/".join(key))
    incident.exemptions = [
        {"regime": x.regime.value, "obligation": x.obligation.value, "reason": x.reason.value}
        for x in plan.exemptions
    ]
    return kept


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
    differs = [n for n, v in changes.items() if getattr(incident, n) != v]
    for name, value in changes.items():
        setattr(incident, name, value)
    incident.status = target.value
    incident.updated_at = now
    if event in (E.UPDATE, E.ASSESS) and differs:
        incident.facts_updated_at = now  # an authority update has something new to say
    if event is E.REPORT:
        incident.created_at = now
        session.add(incident)
    not_owed: list[str] = []
    if event in RECOMPUTES:
        not_owed = sync_deadlines(incident, policy)
    try:
        session.flush()
    except StaleDataError as exc:
        raise ConcurrentUpdateError(
            f"breach {incident.id} was changed by another worker; reload it and retry"
        ) from exc
    if event is E.ASSESS:
        for d in incident.deadlines:
            if d.obligation == "assessment":  # done when the assessment was, late or not
                at = incident.assessed_at or now
                mark_deadline(session, d, "met", actor=actor, now=now, at=at)
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
            **({"kept_not_owed": not_owed} if not_owed else {}),
            **(details or {}),
        },
        actor=actor,
        now=now,
    )
    return incident


def mark_deadline(
    session: Session,
    deadline: BreachDeadline,
    mark: str,
    *,
    actor: str,
    now: datetime,
    at: datetime | None = None,
) -> None:
    """Mark a deadline ``met`` (done *at*, default *now*) or ``missed`` (once) and audit it.
    A deadline done after its due time reads as ``late`` (:func:`deadline_state`)."""
    if mark == "met" and deadline.met_at is None:
        deadline.met_at = at or now
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
            "state": deadline_state(deadline, now),
        },
        actor=actor,
        now=now,
    )


def deadline_state(d: BreachDeadline, now: datetime | None = None) -> str:
    """``met``, ``late`` (done after the deadline), ``missed`` (not done and past its due time
    at *now*, default the current time, whether or not the escalation flow has marked it yet,
    as ``compliance.requests.deadline_state``) or ``open``."""
    if d.met_at is not None:
        return "late" if d.due_at is not None and d.met_at > d.due_at else "met"
    if d.missed_at is not None:
        return "missed"
    now = now or datetime.now(UTC)
    return "missed" if d.due_at is not None and now > d.due_at else "open"


def get_incident(session: Session, breach_id: str) -> BreachIncident:
    incident = session.get(BreachIncident, breach_id)
    if incident is None:
        raise NotFoundError(
            f"no breach {breach_id!r} in the store; use the id `smt breach report` printed"
        )
    return incident


def missing_of(incident: BreachIncident) -> list[str]:
    return checks.missing_for_notice(
        nature=incident.nature,
        contact=incident.contact,
        categories=list(incident.categories),
        measures=list(incident.measures),
        affected_subjects=incident.affected_subjects,
        affected_records=incident.affected_records,
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
                BreachDeadline.owed.is_not(False),
            )
            .order_by(BreachDeadline.due_at, BreachDeadline.id)
        ).scalars()
    )


def describe(incident: BreachIncident, now: datetime | None = None) -> dict[str, Any]:
    """The JSON the CLI prints: ids, status, deadlines (local ISO times and the authority's
    zone, ``tz``; the state at *now*), exemptions."""
    from zoneinfo import ZoneInfo

    now = now or datetime.now(UTC)

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
                "tz": d.tz,
                "state": deadline_state(d, now),
                "owed": d.owed is not False,
            }
            for d in incident.deadlines
        ],
        "exemptions": incident.exemptions,
        "notices": len(incident.notices),
        "small_agent": bool(incident.small_agent),
        "missing": missing_of(incident),
    }


__all__ = [
    "SUBJECTS_OTHER",
    "BreachEvent",
    "covered_regimes",
    "deadline_state",
    "missing_of",
    "BreachStatus",
    "ComplianceError",
    "TRANSITIONS",
    "describe",
    "facts_of",
    "get_incident",
    "mark_deadline",
    "open_deadlines",
    "sync_deadlines",
    "transition",
]
