"""Breach operations on the store: report, update, assess, close, list.

Each checks every input first (``compliance.breach_checks``), so a refused operation adds
nothing to the session, then changes the incident through the one status function,
:func:`compliance.breach_store.transition`, which audits it and recomputes the deadlines.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from compliance import breach_checks as checks
from compliance.breach_deadlines import (
    Policy,
    RiskLevel,
    assess_risk,
    parse_regime,
    regimes_for_jurisdictions,
)
from compliance.breach_models import BreachIncident, BreachSubject
from compliance.breach_store import BreachStatus, E, transition
from compliance.errors import InvalidTransitionError, NotFoundError
from compliance.models import Subject
from mpc.errors import InputError


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


def _codes(values: Iterable[str], known: Iterable[str], what: str) -> list[str]:
    out = [v.strip() for v in values]
    unknown = sorted(set(out) - set(known))
    if unknown:
        raise InputError(f"unknown {what} code(s) {unknown}; use {', '.join(sorted(known))}")
    return list(dict.fromkeys(out))


def _fact_changes(
    *,
    nature: str | None = None,
    contact: str | None = None,
    categories: Iterable[str] | None = None,
    measures: Iterable[str] | None = None,
    affected: int | None = None,
    records: int | None = None,
    regions: Iterable[str] | None = None,
    cause: str | None = None,
    prevention: str | None = None,
    small_agent: bool | None = None,
    occurred_at: datetime | None = None,
    occurred_until: datetime | None = None,
    occurred_estimated: bool | None = None,
    law_enforcement_delay: bool | None = None,
    third_party_source: bool | None = None,
    identity_services: str | None = None,
    secondary_damage: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Validated fact changes (only those given): nothing is written when one is bad."""
    from compliance.breach_notices import CATEGORIES, MEASURES

    now = now or datetime.now(UTC)
    out: dict[str, Any] = {}
    if nature is not None:
        out["nature"] = checks.text_block(nature, "nature")
    if contact is not None:
        out["contact"] = checks.contact(contact)
    if categories is not None:
        out["categories"] = _codes(categories, CATEGORIES, "category")
    if measures is not None:
        out["measures"] = _codes(measures, MEASURES, "measure")
    if affected is not None:
        out["affected_subjects"] = checks.count(affected, "affected")
    if records is not None:
        out["affected_records"] = checks.count(records, "records")
    if regions is not None:
        out["regions"] = checks.regions(regions)
    for name, text in (
        ("cause", cause),
        ("prevention", prevention),
        ("identity_services", identity_services),
        ("secondary_damage", secondary_damage),
    ):
        if text is not None:
            out[name] = checks.text_block(text, name.replace("_", " ")) or None
    for name, flag in (
        ("small_agent", small_agent),
        ("occurred_estimated", occurred_estimated),
        ("law_enforcement_delay", law_enforcement_delay),
        ("third_party_source", third_party_source),
    ):
        if flag is not None:
            out[name] = flag
    if occurred_at is not None:
        out["occurred_at"] = checks.moment(occurred_at, "occurred_at", now=now)
    if occurred_until is not None:
        out["occurred_until"] = checks.moment(occurred_until, "occurred_until", now=now)
    return out


def _occurrence(changes: dict[str, Any], incident: BreachIncident | None) -> None:
    """1798.82(d)(2)(C): a date range needs its start, and ends after it."""
    start = changes.get("occurred_at", incident.occurred_at if incident else None)
    end = changes.get("occurred_until", incident.occurred_until if incident else None)
    if end is not None and start is None:
        raise InputError("occurred_until ends a date range: give its start too (--occurred-at)")
    if start is not None and end is not None and end < start:
        raise InputError("occurred_until is before occurred_at; a date range ends after it starts")


def _subjects(session: Session, subject_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """Checked subject ids (sorted, unique) and their jurisdictions (``FR``, ``US-CA``)."""
    ids = sorted({checks.identifier(s, "subject id") for s in subject_ids})
    subjects = [session.get(Subject, s) for s in ids]
    if any(s is None for s in subjects):
        raise NotFoundError("an affected subject id is not in the compliance store; add it first")
    jurisdictions = [
        f"{s.country}-{s.subdivision}" if s.subdivision else s.country
        for s in subjects
        if s is not None and s.country
    ]
    return ids, jurisdictions


def report_breach(
    session: Session,
    *,
    aware_at: datetime,
    nature: str = "",
    contact: str | None = None,
    regimes: Iterable[str] = (),
    subject_ids: Iterable[str] = (),
    affected: int | None = None,
    records: int = 0,
    regions: Iterable[str] = (),
    categories: Iterable[str] = (),
    measures: Iterable[str] = (),
    occurred_at: datetime | None = None,
    cause: str | None = None,
    prevention: str | None = None,
    small_agent: bool = False,
    occurred_until: datetime | None = None,
    occurred_estimated: bool = False,
    law_enforcement_delay: bool | None = None,
    third_party_source: bool = False,
    identity_services: str | None = None,
    secondary_damage: str | None = None,
    likelihood: int | None = None,
    severity: int | None = None,
    high_risk: bool | None = None,
    encrypted: bool = False,
    assessed_at: datetime | None = None,
    actor: str = "smt",
    policy: Policy | None = None,
    now: datetime | None = None,
) -> BreachIncident:
    """Register an incident and its deadlines.  Regimes: those given plus those that follow
    from the affected subjects' countries.  Risk facts given here count as the assessment
    (made at *assessed_at*, default *now*).  Every input is checked before anything is added
    to the session, so a refused report stores nothing."""
    now = now or datetime.now(UTC)
    checks.times(aware_at=aware_at, now=now, occurred_at=occurred_at)
    ids, jurisdictions = _subjects(session, subject_ids)
    found = {parse_regime(r) for r in regimes} | regimes_for_jurisdictions(jurisdictions)
    if not found:
        raise InputError("no regime applies: give --regime or affected subjects with a country")
    facts = _fact_changes(
        nature=nature,
        contact=contact or "",
        categories=categories,
        measures=measures,
        affected=len(ids) if affected is None else affected,
        records=records,
        regions=regions,
        cause=cause,
        prevention=prevention,
        small_agent=small_agent,
        occurred_until=occurred_until,
        occurred_estimated=occurred_estimated,
        law_enforcement_delay=law_enforcement_delay,
        third_party_source=third_party_source,
        identity_services=identity_services,
        secondary_damage=secondary_damage,
        now=now,
    )
    _occurrence({**facts, "occurred_at": occurred_at}, None)
    count = facts["affected_subjects"]
    if count < len(ids):
        raise InputError(f"affected ({count}) is below the {len(ids)} subject ids given")
    risk = _risk_changes(likelihood, severity, high_risk)
    if assessed_at is not None and not risk:
        # An input is never dropped: without risk facts there is no assessment to date.
        raise InputError(
            "--assessed-at dates the risk assessment given with the report (--high-risk);"
            " without one, record the assessment with `smt breach assess ID --likelihood N"
            " --severity N --assessed-at ISO`"
        )
    when = checks.assessed_at(assessed_at or now, aware_at=aware_at, now=now) if risk else None
    incident = BreachIncident(id=f"BR-{uuid.uuid4().hex[:12]}", phase=0, exemptions=[])
    incident.subjects = [BreachSubject(subject_id=s) for s in ids]
    changes: dict[str, Any] = {
        "aware_at": aware_at.astimezone(UTC),
        "occurred_at": occurred_at.astimezone(UTC) if occurred_at else None,
        "regimes": sorted(r.value for r in found),
        "affected_by_regime": {},
        "cause": None,
        "prevention": None,
        **facts,
        "encrypted": encrypted,
        "likelihood": None,
        "severity": None,
        "risk_level": None,
        "high_risk": False,
        "risk_removed": False,
        "disproportionate_effort": False,
        "unlawful_purpose": False,
        **risk,
        **({"assessed_at": when} if risk else {}),
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


def update_breach(
    session: Session,
    incident: BreachIncident,
    *,
    actor: str = "smt",
    policy: Policy | None = None,
    now: datetime | None = None,
    subject_ids: Iterable[str] = (),
    **facts: Any,
) -> BreachIncident:
    """Add or correct facts (nature, contact, categories, measures, counts, cause, prevention,
    small agent, occurrence time) and link more affected subjects (*subject_ids*: they get
    their notices on the next notify; regimes of their countries are added); the deadlines
    follow."""
    now = now or datetime.now(UTC)
    changes = _fact_changes(**facts, now=now)
    linked_ids = {link.subject_id for link in incident.subjects}
    ids, jurisdictions = _subjects(session, subject_ids)
    new_ids = [s for s in ids if s not in linked_ids]
    if ids and not new_ids:
        raise InputError("every subject given is already linked to the incident")
    if not changes and not new_ids:
        raise InputError("nothing to update; give at least one fact (see `smt breach update -h`)")
    if new_ids:
        found = regimes_for_jurisdictions(jurisdictions)
        regimes = sorted(set(incident.regimes) | {r.value for r in found})
        if regimes != sorted(incident.regimes):
            changes["regimes"] = regimes
    if "occurred_at" in changes and changes["occurred_at"] > incident.aware_at:
        raise InputError("occurred_at is after aware_at; a breach occurs before one learns of it")
    _occurrence(changes, incident)
    linked = len(incident.subjects) + len(new_ids)
    if changes.get("affected_subjects", incident.affected_subjects) < linked:
        raise InputError(
            f"affected is below the {linked} subjects linked to the incident; raise it too"
            " (--affected N)"
        )
    incident.subjects.extend(BreachSubject(subject_id=s) for s in new_ids)
    return transition(
        session,
        incident,
        E.UPDATE,
        actor=actor,
        changes=changes,
        details={"subjects_linked": len(new_ids)} if new_ids else None,
        policy=policy,
        now=now,
    )


def close_breach(
    session: Session,
    incident: BreachIncident,
    *,
    reason: str,
    unmet_ok: bool = False,
    actor: str = "smt",
    now: datetime | None = None,
) -> BreachIncident:
    """Close an incident.  Refused while a deadline is neither met nor late (e.g. the APPI final
    report) unless *unmet_ok* (then the open ones are named in the audit entry)."""
    reason = checks.one_line(reason, "reason")
    unmet = sorted(  # a missed deadline no longer owed does not block (it stays missed)
        f"{d.regime}/{d.obligation}"
        for d in incident.deadlines
        if d.met_at is None and d.owed is not False
    )
    if unmet and not unmet_ok:
        raise InvalidTransitionError(
            f"breach {incident.id}: {', '.join(unmet)} not done; produce them"
            " (`smt breach notify`, `--final` for the APPI final report) or close with"
            " --unmet-ok and a reason"
        )
    return transition(
        session,
        incident,
        E.CLOSE,
        actor=actor,
        reason=reason,
        details={"unmet": unmet} if unmet else None,
        now=now,
    )


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
    assessed_at: datetime | None = None,
    actor: str = "smt",
    policy: Policy | None = None,
    now: datetime | None = None,
) -> BreachIncident:
    """Record the risk assessment, made at *assessed_at* (an input: when the decision was
    taken, default *now*); the PDPA assessment deadline is met or late by that time."""
    now = now or datetime.now(UTC)
    when = checks.assessed_at(assessed_at or now, aware_at=incident.aware_at, now=now)
    changes = _risk_changes(likelihood, severity, high_risk) | {"assessed_at": when.astimezone(UTC)}
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



def list_breaches(session: Session, *, status: str | None = None) -> list[BreachIncident]:
    query = select(BreachIncident).order_by(BreachIncident.created_at, BreachIncident.id)
    if status is not None:
        try:
            query = query.where(BreachIncident.status == BreachStatus(status).value)
        except ValueError:
            names = ", ".join(s.value for s in BreachStatus)
            raise InputError(f"unknown status {status!r}; use one of {names}") from None
    return list(session.execute(query).scalars())
