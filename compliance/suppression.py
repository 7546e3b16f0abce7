"""Suppression entries: an objection, an opt-out or a withdrawn consent outlives an erasure.

Erasing a subject deletes the subject row with its consents and flags, so without more the next
batch would process them again.  GDPR Art. 7(3) (withdrawal), 17(3)/21(3) (objection) and CCPA
1798.120/1798.135 (opt-out) require the opposite, so erasure leaves one minimal entry per ground:
``ref``, a keyed hash of the pseudonymous subject id (HMAC-SHA256 under a key derived from the
audit key, which lives outside the database, so the store alone cannot be used to test guessed
ids), the ground and its scope (a purpose, or ``*``).  Nothing else about the subject is kept.

The consent gate (``compliance.subjects.decide``) excludes a suppressed id whether or not the
subject was re-created since.  A suppression is lifted only by the subject's own new act, and
only as far as that act reaches: a consent given for a purpose lifts a withdrawal for that
purpose; an objection or opt-out is lifted only when the subject withdraws it or opts back in
(``smt consent reinstate``; CCPA regs 7026(k)).  Lifting is audited.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, or_, select
from sqlalchemy.orm import Session

from compliance import audit
from compliance.gate import ExclusionReason
from compliance.models import (
    Consent,
    DataSubjectRequest,
    RequestStatus,
    RequestType,
    Subject,
    Suppression,
)

ANY_PURPOSE = "*"
REASONS = {
    "consent_withdrawn": ExclusionReason.CONSENT_WITHDRAWN,
    "objected": ExclusionReason.OBJECTED,
    "opted_out": ExclusionReason.OBJECTED,
}
_LABEL = b"smt suppression v1"


def _key() -> bytes:
    return hmac.new(audit.audit_key(), _LABEL, hashlib.sha256).digest()


def ref(subject_id: str, key: bytes | None = None) -> str:
    """The keyed hash the store keeps instead of the id (``key``: ``_key()``, once per batch)."""
    return hmac.new(key or _key(), subject_id.encode(), hashlib.sha256).hexdigest()


def grounds(session: Session, subject: Subject) -> list[tuple[str, str]]:
    """(reason, scope) pairs the subject's current state asks to keep after an erasure."""
    found: list[tuple[str, str]] = []
    # an objection still being weighed counts too (stricter reading: the subject who objected
    # and then asked for erasure has made their wish plain; nothing is left to weigh it against)
    pending = session.execute(
        select(DataSubjectRequest.id).where(
            DataSubjectRequest.subject_id == subject.id,
            DataSubjectRequest.type.in_([RequestType.OBJECTION, RequestType.OPT_OUT]),
            DataSubjectRequest.status.in_(
                [RequestStatus.RECEIVED, RequestStatus.IN_PROGRESS, RequestStatus.FAILED]
            ),
        )
    ).first()
    if subject.objected or pending is not None:
        found.append(("objected", ANY_PURPOSE))
    if subject.opted_out:
        found.append(("opted_out", ANY_PURPOSE))
    latest: dict[str, Consent] = {}
    for c in session.execute(
        select(Consent).where(Consent.subject_id == subject.id).order_by(Consent.id)
    ).scalars():
        latest[c.purpose] = c
    found += [("consent_withdrawn", p) for p, c in sorted(latest.items()) if not c.given]
    return found


def record(session: Session, subject: Subject, *, actor: str, now: datetime) -> list[str]:
    """Keep the subject's grounds (call before the subject row is deleted); returns the reasons."""
    key = ref(subject.id)
    kept = []
    for reason, scope in grounds(session, subject):
        exists = session.execute(
            select(Suppression.id).where(
                Suppression.ref == key, Suppression.reason == reason, Suppression.scope == scope
            )
        ).first()
        if exists is None:
            session.add(Suppression(ref=key, reason=reason, scope=scope, created_at=now))
        kept.append(f"{reason}:{scope}")
    if kept:
        session.flush()
        audit.append(
            session,
            action="suppression.recorded",
            object_type="suppression",
            object_id="-",
            subject_ref=None,
            details={"grounds": kept},
            actor=actor,
            now=now,
        )
    return kept


def lift(
    session: Session,
    subject_id: str,
    *,
    purpose: str | None = None,
    objections: bool = False,
    actor: str,
    now: datetime,
) -> int:
    """Drop what the subject's own new act overrides: a consent given for ``purpose`` lifts a
    withdrawal for that purpose only; ``objections`` (the subject withdrew their objection or
    opted back in, ``subjects.reinstate``) lifts the ``*`` entries.  A consent never lifts an
    objection, as it would not have cleared the ``objected`` flag before the erasure."""
    key = ref(subject_id)
    conditions: list[ColumnElement[bool]] = []
    if purpose is not None:
        conditions.append(
            and_(Suppression.reason == "consent_withdrawn", Suppression.scope == purpose)
        )
    if objections:
        conditions.append(Suppression.scope == ANY_PURPOSE)
    if not conditions:
        return 0
    stmt = delete(Suppression).where(Suppression.ref == key, or_(*conditions))
    n = audit.rowcount(session.execute(stmt))
    if n:
        audit.append(
            session,
            action="suppression.lifted",
            object_type="suppression",
            object_id="-",
            subject_ref=None,
            details={"purpose": purpose, "objections": objections, "entries": n},
            actor=actor,
            now=now,
        )
    return n


def suppressed(
    session: Session, subject_ids: Iterable[str], *, purpose: str
) -> dict[str, ExclusionReason]:
    """Subject id -> the exclusion reason of its suppression, for the ids that have one."""
    key = _key()  # the gate's hot path: derive the key once, not per subject
    refs = {ref(sid, key): sid for sid in set(subject_ids)}
    out: dict[str, ExclusionReason] = {}
    keys = sorted(refs)
    for chunk in (keys[i : i + 500] for i in range(0, len(keys), 500)):
        for s in session.execute(
            select(Suppression).where(
                Suppression.ref.in_(chunk), Suppression.scope.in_([purpose, ANY_PURPOSE])
            )
        ).scalars():
            reason = REASONS.get(s.reason, ExclusionReason.OBJECTED)
            current = out.get(refs[s.ref])
            # objection outranks a purpose's withdrawn consent in what the run reports
            if current is None or reason is ExclusionReason.OBJECTED:
                out[refs[s.ref]] = reason
    return out
