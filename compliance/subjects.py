"""Subjects, consents, restriction/objection/opt-out flags, and the SQL consent gate."""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from compliance import audit, suppression
from compliance.errors import ComplianceError, NotFoundError
from compliance.gate import ExclusionReason, GateDecision, Policy
from compliance.models import Consent, Regime, Subject
from compliance.runs import record_inference_run  # noqa: F401  (re-export; see compliance.store)

DEFAULT_TIME_ZONE = {
    Regime.GDPR: "Europe/Brussels",
    Regime.CCPA: "America/Los_Angeles",
    Regime.PDPA: "Asia/Singapore",
}
RECTIFIABLE = ("region", "country", "subdivision", "locale", "time_zone")


def _check_tz(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ComplianceError(
            f"unknown time zone {name!r}: give an IANA name such as 'Europe/Paris'"
        ) from exc
    return name


def check_subject_id(subject_id: str) -> str:
    """A pseudonymous id: 1 to 128 characters, no surrounding blanks, no control characters
    (a newline in an id would forge lines in any text it is written to)."""
    if (
        not subject_id
        or len(subject_id) > 128
        or subject_id != subject_id.strip()
        or any(unicodedata.category(c).startswith("C") for c in subject_id)
    ):
        raise ComplianceError(
            "a subject id must be 1 to 128 printable characters without surrounding blanks"
        )
    return subject_id


def get_subject(session: Session, subject_id: str) -> Subject:
    subject = session.get(Subject, subject_id)
    if subject is None:
        raise NotFoundError("no such subject in the compliance store; check the pseudonymous id")
    return subject


def ensure_subject(
    session: Session,
    subject_id: str,
    *,
    time_zone: str | None = None,
    region: str | None = None,
    country: str | None = None,
    subdivision: str | None = None,
    locale: str | None = None,
    actor: str = "smt",
    now: datetime | None = None,
) -> Subject:
    """Return the subject, creating it (with an audit entry) if it is new.

    Attributes given for an existing subject are left alone (change them by rectification),
    except a time zone the store did not know yet.
    """
    subject = session.get(Subject, subject_id)
    if subject is not None:
        if subject.time_zone is None and time_zone:
            subject.time_zone = _check_tz(time_zone)
        return subject
    check_subject_id(subject_id)
    now = now or datetime.now(UTC)
    subject = Subject(
        id=subject_id,
        time_zone=_check_tz(time_zone) if time_zone else None,
        region=region,
        country=country.upper() if country else None,
        subdivision=subdivision,
        locale=locale,
        restricted=False,
        objected=False,
        opted_out=False,
        restriction_grounds=[],
        audit_salt=secrets.token_hex(32),
        created_at=now,
        updated_at=now,
    )
    session.add(subject)
    session.flush()
    audit.append(
        session,
        action="subject.created",
        object_type="subject",
        object_id="-",
        subject_ref=audit.subject_ref(subject),
        actor=actor,
        now=now,
    )
    return subject


def record_consent(
    session: Session,
    subject_id: str,
    purpose: str,
    *,
    given: bool,
    source: str,
    actor: str = "smt",
    now: datetime | None = None,
) -> Consent:
    """Append a consent event (the history is kept; the latest event per purpose counts)."""
    now = now or datetime.now(UTC)
    subject = ensure_subject(session, subject_id, actor=actor, now=now)
    consent = Consent(
        subject_id=subject.id, purpose=purpose, given=given, source=source, recorded_at=now
    )
    session.add(consent)
    session.flush()
    if given:  # the subject's own new act overrides a withdrawal an earlier erasure kept
        suppression.lift(session, subject.id, purpose=purpose, actor=actor, now=now)
    audit.append(
        session,
        action="consent.given" if given else "consent.withdrawn",
        object_type="consent",
        object_id=str(consent.id),
        subject_ref=audit.subject_ref(subject),
        details={"purpose": purpose, "source": source},
        actor=actor,
        now=now,
    )
    return consent


def current_consents(session: Session, subject_id: str) -> dict[str, Consent]:
    """The latest consent event per purpose."""
    rows = session.execute(
        select(Consent).where(Consent.subject_id == subject_id).order_by(Consent.id)
    ).scalars()
    return {c.purpose: c for c in rows}


def describe_subject(session: Session, subject_id: str) -> dict[str, Any]:
    """What ``smt consent show`` prints: flags, current consents and the full history."""
    subject = get_subject(session, subject_id)
    current = current_consents(session, subject_id)
    return {
        "subject_id": subject.id,
        "region": subject.region,
        "country": subject.country,
        "subdivision": subject.subdivision,
        "locale": subject.locale,
        "time_zone": subject.time_zone,
        "restricted": subject.restricted,
        "restriction_grounds": list(subject.restriction_grounds or []),
        "objected": subject.objected,
        "opted_out": subject.opted_out,
        "consents": {
            p: {"given": c.given, "source": c.source, "at": c.recorded_at.isoformat()}
            for p, c in sorted(current.items())
        },
        "history": [
            {
                "purpose": c.purpose,
                "given": c.given,
                "source": c.source,
                "at": c.recorded_at.isoformat(),
            }
            for c in subject.consents
        ],
    }


def set_flags(
    session: Session,
    subject: Subject,
    *,
    actor: str,
    now: datetime,
    reason: str,
    **flags: bool,
) -> None:
    """Set restricted / objected / opted_out (only these) and audit the change."""
    allowed = {"restricted", "objected", "opted_out"}
    unknown = set(flags) - allowed
    if unknown:
        raise ComplianceError(f"unknown subject flags {sorted(unknown)}; use {sorted(allowed)}")
    for name, value in flags.items():
        setattr(subject, name, value)
    subject.updated_at = now
    audit.append(
        session,
        action="subject.flags",
        object_type="subject",
        object_id="-",
        subject_ref=audit.subject_ref(subject),
        details={"flags": flags, "reason": reason},
        actor=actor,
        now=now,
    )


def reinstate(
    session: Session, subject_id: str, *, reason: str, actor: str, now: datetime | None = None
) -> dict[str, Any]:
    """The subject withdrew their objection or opted back in (CCPA regs 7026(k)): clear the
    ``objected`` / ``opted_out`` flags and any objection kept after an erasure (audited)."""
    if not reason.strip():
        raise ComplianceError("reinstating needs a reason (how the subject withdrew the objection)")
    now = now or datetime.now(UTC)
    subject = ensure_subject(session, subject_id, actor=actor, now=now)
    cleared = [f for f in ("objected", "opted_out") if getattr(subject, f)]
    if cleared:
        set_flags(session, subject, actor=actor, now=now, reason=reason, objected=False,
                  opted_out=False)
    lifted = suppression.lift(session, subject_id, objections=True, actor=actor, now=now)
    if not cleared and not lifted:
        raise ComplianceError("the subject has no objection or opt-out to withdraw")
    return {"subject_id": subject_id, "flags_cleared": cleared, "suppressions_lifted": lifted}


def rectify(
    session: Session, subject: Subject, changes: dict[str, str | None], *, actor: str, now: datetime
) -> list[str]:
    """Apply rectified attributes; returns the names changed (values are not audited)."""
    unknown = set(changes) - set(RECTIFIABLE)
    if unknown:
        raise ComplianceError(
            f"cannot rectify {sorted(unknown)}: the store holds only {list(RECTIFIABLE)}"
        )
    changed = []
    for name, value in changes.items():
        if name == "time_zone" and value is not None:
            _check_tz(value)
        if getattr(subject, name) != value:
            setattr(subject, name, value)
            changed.append(name)
    subject.updated_at = now
    audit.append(
        session,
        action="subject.rectified",
        object_type="subject",
        object_id="-",
        subject_ref=audit.subject_ref(subject),
        details={"fields": sorted(changed)},
        actor=actor,
        now=now,
    )
    return changed


def decide(
    session: Session, subject_ids: Iterable[str], *, purpose: str, policy: Policy = "default"
) -> dict[str, GateDecision]:
    """The gate's rule (see ``compliance.gate``), read from the store in two queries."""
    ids = sorted(set(subject_ids))
    subjects: dict[str, Subject] = {}
    latest: dict[str, Consent] = {}
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        subjects.update(
            (s.id, s)
            for s in session.execute(select(Subject).where(Subject.id.in_(chunk))).scalars()
        )
        for c in session.execute(
            select(Consent)
            .where(Consent.subject_id.in_(chunk), Consent.purpose == purpose)
            .order_by(Consent.id)
        ).scalars():
            latest[c.subject_id] = c
    suppressed = suppression.suppressed(session, ids, purpose=purpose)
    decisions = {}
    for sid in ids:
        reason = _exclusion(subjects.get(sid), latest.get(sid), policy) or suppressed.get(sid)
        decisions[sid] = GateDecision(subject_id=sid, allowed=reason is None, reason=reason)
    return decisions


def _exclusion(
    subject: Subject | None, consent: Consent | None, policy: Policy
) -> ExclusionReason | None:
    if subject is not None and subject.restricted:
        return ExclusionReason.RESTRICTED
    if subject is not None and (subject.objected or subject.opted_out):
        return ExclusionReason.OBJECTED
    if consent is not None and not consent.given:
        return ExclusionReason.CONSENT_WITHDRAWN
    if policy == "strict" and consent is None:
        return ExclusionReason.NO_CONSENT
    return None


class SqlConsentGate:
    """``compliance.gate.ConsentGate`` backed by the compliance store."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def decide(
        self, subject_ids: Iterable[str], *, purpose: str, policy: Policy = "default"
    ) -> dict[str, GateDecision]:
        if policy not in ("default", "strict"):
            raise ComplianceError(f"unknown gate policy {policy!r}; use 'default' or 'strict'")
        with self._factory() as session:
            return decide(session, subject_ids, purpose=purpose, policy=policy)
