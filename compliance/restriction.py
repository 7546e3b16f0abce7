"""Restriction of processing (GDPR Art. 18): interim restriction and its lifting.

A subject's ``restricted`` flag is the gate's input; ``restriction_grounds`` says why it is set:
``request:<id>`` for each request that restricts processing:

- an interim restriction while the subject contests accuracy (a rectification request,
  Art. 18(1)(a)) or while an objection is being weighed (Art. 18(1)(d)).  The GDPR gives the
  subject the right to obtain it; we apply it on receipt without waiting for a separate
  request (the stricter reading: no processing of contested data at all while it is pending).
- a restriction request (Art. 18(1)), once executed.

Closing an interim ground's request (completed, rejected or cancelled) removes that ground; the
restriction itself is lifted only when no ground is left, and ``lift`` removes grounds on a
controller's decision (e.g. the restriction request's period ended).  Either way Art. 18(3)
applies: the subject is informed *before* the restriction is lifted.  The notice (in the
subject's language) is stored in the ``result`` of each request whose ground ended, so it is
delivered with the answer and erased with the subject; the audit entry records the grounds, the
reason and that a notice was produced, never the subject id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from compliance import audit
from compliance.errors import ComplianceError
from compliance.i18n import translator_or_fallback
from compliance.models import DataSubjectRequest, Regime, RequestStatus, RequestType, Subject

INTERIM_TYPES = frozenset({RequestType.RECTIFICATION, RequestType.OBJECTION})


def ground(request: DataSubjectRequest) -> str:
    return f"request:{request.id}"


def needs_interim(request: DataSubjectRequest) -> bool:
    return request.regime == Regime.GDPR and RequestType(request.type) in INTERIM_TYPES


def restrict(
    session: Session, subject: Subject, why: str, *, basis: str, actor: str, now: datetime
) -> None:
    """Add a ground and set the flag (audited)."""
    grounds = list(subject.restriction_grounds or [])
    if why not in grounds:
        grounds.append(why)
    subject.restriction_grounds = grounds
    subject.restricted = True
    subject.updated_at = now
    audit.append(
        session,
        action="subject.restricted",
        object_type="subject",
        object_id="-",
        subject_ref=audit.subject_ref(subject),
        details={"ground": why, "basis": basis},
        actor=actor,
        now=now,
    )


def notice(subject: Subject, *, since: datetime | None, reason: str, now: datetime) -> dict[str, Any]:
    """The Art. 18(3) information, in the subject's language (English when none is stored).

    Two texts: processing may resume; or it does not, because an objection or opt-out now
    applies in the restriction's place (an upheld objection must not read as "we may process
    your data again")."""
    t, flagged = translator_or_fallback(subject.locale, subject.time_zone)
    _ = t.gettext
    resumes = not (subject.objected or subject.opted_out)
    if resumes:
        title = _("Restriction of processing lifted")
        lines = [
            _("Hello,"),
            _(
                "The restriction of processing of your personal data ends on %(date)s. From then"
                " on we may process your data again as described in our privacy notice."
            )
            % {"date": t.datetime(now)},
            _("Reason: %(reason)s") % {"reason": _(reason)},
            _(
                "You may object to the processing, ask for its restriction again or lodge a"
                " complaint with a supervisory authority."
            ),
        ]
    else:
        title = _("End of the interim restriction of processing")
        lines = [
            _("Hello,"),
            _(
                "The interim restriction of processing of your personal data ends on %(date)s."
                " We will not process your data for this purpose again: your objection applies"
                " in its place."
            )
            % {"date": t.datetime(now)},
            _("Reason: %(reason)s") % {"reason": _(reason)},
            _("You may lodge a complaint with a supervisory authority (Article 77)."),
        ]
    return {
        "locale": t.locale,
        "fallback_locale": flagged,
        "processing_resumes": resumes,
        "title": title,
        "text": "\n".join([title, "", *lines]) + "\n",
        "produced_at": now.isoformat(),
        **({"restricted_since": since.isoformat()} if since else {}),
    }


def release(
    session: Session,
    subject: Subject,
    ended: list[str],
    *,
    reason: str,
    actor: str,
    now: datetime,
) -> dict[str, Any] | None:
    """Remove ``ended`` grounds; when none is left, inform the subject and lift the flag.

    Returns the notice when the restriction was lifted, else None.
    """
    if not reason.strip():
        raise ComplianceError("lifting a restriction needs a reason (it is told to the subject)")
    before = list(subject.restriction_grounds or [])
    left = [g for g in before if g not in ended]
    subject.restriction_grounds = left
    subject.updated_at = now
    if left or not subject.restricted:
        return None
    produced = notice(subject, since=None, reason=reason, now=now)
    for g in ended:  # deliver with the answer of each request whose ground ended
        request = _request_of(session, g)
        if request is not None:
            request.result = {**(request.result or {}), "restriction_notice": produced}
    audit.append(
        session,
        action="subject.restriction_notice",
        object_type="subject",
        object_id="-",
        subject_ref=audit.subject_ref(subject),
        details={"grounds": sorted(ended), "locale": produced["locale"]},
        actor=actor,
        now=now,
    )
    subject.restricted = False
    audit.append(
        session,
        action="subject.restriction_lifted",
        object_type="subject",
        object_id="-",
        subject_ref=audit.subject_ref(subject),
        details={"grounds": sorted(ended), "reason": reason, "basis": "GDPR Art. 18(3)"},
        actor=actor,
        now=now,
    )
    return produced


def _request_of(session: Session, ground_: str) -> DataSubjectRequest | None:
    """The request a ``request:<id>`` ground names (None for other grounds or a gone request)."""
    kind, _, rid = ground_.partition(":")
    return session.get(DataSubjectRequest, rid) if kind == "request" else None


def _pending_interim(session: Session, ground_: str) -> bool:
    request = _request_of(session, ground_)
    return (
        request is not None
        and needs_interim(request)
        and request.status in (RequestStatus.RECEIVED, RequestStatus.IN_PROGRESS,
                               RequestStatus.FAILED)
    )


def lift(
    session: Session,
    subject: Subject,
    *,
    reason: str,
    actor: str,
    now: datetime,
    grounds: list[str] | None = None,
) -> dict[str, Any]:
    """A controller's decision to lift (all grounds but those of pending rectifications and
    objections, or the ones given)."""
    if not subject.restricted:
        raise ComplianceError("the subject's processing is not restricted; nothing to lift")
    current = list(subject.restriction_grounds or [])
    pending = [g for g in current if _pending_interim(session, g)]
    ended = [g for g in current if g not in pending] if grounds is None else grounds
    unknown = sorted(set(ended) - set(current))
    if unknown:
        raise ComplianceError(
            f"not a ground of this restriction: {unknown}; its grounds are {current}"
        )
    held = sorted(set(ended) & set(pending))
    if held or (current and not ended):
        # Art. 18(1)(a),(d): the interim restriction lasts while the accuracy is verified or
        # the objection weighed; it ends with that request, not by a separate decision
        raise ComplianceError(
            f"{held or pending} belong(s) to a rectification or objection still pending; the"
            " restriction ends when that request is completed, rejected or cancelled"
        )
    if not current:  # restricted by an older store without grounds: lift it whole
        ended = []
    produced = release(session, subject, ended, reason=reason, actor=actor, now=now)
    if produced is None:
        left = sorted(subject.restriction_grounds)
        return {"lifted": False, "grounds_left": left}
    return {"lifted": True, "notice": produced}
