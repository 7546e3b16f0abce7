"""Data-subject requests: submission, deadlines and the one state machine.

Every status change goes through ``transition``, which checks ``TRANSITIONS``, applies the
event's side effects, bumps the row version (optimistic lock: a concurrent writer gets
``ConcurrentUpdateError``) and writes the audit entry, all in the caller's transaction.

    (new) --submit--> received --start--> in_progress --complete--> completed
                         |  ^                 |  |
                         |  +--(ack/extend)   |  +--fail--> failed --start--> in_progress
                         +--reject/cancel     +--reject           +--cancel--> cancelled

``acknowledge`` (CCPA receipt confirmation) and ``extend`` keep the status and are audited
like any other event.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from compliance import audit, deadlines, metrics, restriction
from compliance.errors import (
    ComplianceError,
    ConcurrentUpdateError,
    InvalidTransitionError,
    NotFoundError,
)
from compliance.i18n import N_
from compliance.models import (
    DataSubjectRequest,
    Deadline,
    Regime,
    RequestStatus,
    RequestType,
    Subject,
)
from compliance.subjects import DEFAULT_TIME_ZONE, RECTIFIABLE, ensure_subject


class Event(StrEnum):
    SUBMIT = "submit"
    ACKNOWLEDGE = "acknowledge"
    EXTEND = "extend"
    START = "start"
    COMPLETE = "complete"
    FAIL = "fail"
    REJECT = "reject"
    CANCEL = "cancel"


S = RequestStatus
TRANSITIONS: dict[tuple[RequestStatus | None, Event], RequestStatus] = {
    (None, Event.SUBMIT): S.RECEIVED,
    (S.RECEIVED, Event.ACKNOWLEDGE): S.RECEIVED,
    (S.IN_PROGRESS, Event.ACKNOWLEDGE): S.IN_PROGRESS,
    # a confirmation sent in time but recorded only after the answer (--at, not after closing)
    (S.FAILED, Event.ACKNOWLEDGE): S.FAILED,
    (S.COMPLETED, Event.ACKNOWLEDGE): S.COMPLETED,
    (S.REJECTED, Event.ACKNOWLEDGE): S.REJECTED,
    (S.RECEIVED, Event.EXTEND): S.RECEIVED,
    (S.IN_PROGRESS, Event.EXTEND): S.IN_PROGRESS,
    (S.FAILED, Event.EXTEND): S.FAILED,
    (S.RECEIVED, Event.START): S.IN_PROGRESS,
    (S.FAILED, Event.START): S.IN_PROGRESS,
    (S.IN_PROGRESS, Event.COMPLETE): S.COMPLETED,
    (S.IN_PROGRESS, Event.FAIL): S.FAILED,
    (S.RECEIVED, Event.REJECT): S.REJECTED,
    (S.IN_PROGRESS, Event.REJECT): S.REJECTED,
    (S.RECEIVED, Event.CANCEL): S.CANCELLED,
    (S.FAILED, Event.CANCEL): S.CANCELLED,
}
NEEDS_REASON = frozenset({Event.EXTEND, Event.REJECT, Event.FAIL, Event.CANCEL})
CLAIMABLE = (S.RECEIVED, S.FAILED)


def _deadline(request: DataSubjectRequest, obligation: str) -> Deadline | None:
    return next((d for d in request.deadlines if d.obligation == obligation), None)


def _apply(
    session: Session,
    request: DataSubjectRequest,
    event: Event,
    now: datetime,
    reason: str | None,
    at: datetime | None = None,
) -> None:
    """Side effects of an allowed event (status is set by ``transition``)."""
    if event is Event.ACKNOWLEDGE:
        confirm = _deadline(request, deadlines.CONFIRM_RECEIPT)
        if confirm is None or request.acknowledged_at is not None:
            raise InvalidTransitionError(
                "nothing to acknowledge: only CCPA know/delete/correct requests need a receipt"
                " confirmation, and only once"
            )
        sent = at or now
        latest = request.closed_at or now
        if sent > latest or sent < request.received_at:
            raise InvalidTransitionError(
                f"the confirmation's time {sent.isoformat()} must lie between the request's"
                f" receipt ({request.received_at.isoformat()}) and"
                f" {'its closing' if request.closed_at else 'now'}"
            )
        request.acknowledged_at = sent
        confirm.met_at = min(confirm.met_at or sent, sent)
    elif event is Event.EXTEND:
        respond = _deadline(request, deadlines.RESPOND)
        if request.extended_at is not None or respond is None:
            raise InvalidTransitionError("a request can be extended once only")
        if now > respond.due_at:
            raise InvalidTransitionError(
                "too late to extend: the subject must be told before the original deadline"
            )
        subject_tz, country = request.time_zone, request.payload.get("country")
        due = deadlines.compute(
            Regime(request.regime),
            RequestType(request.type),
            request.received_at,
            subject_tz,
            country=country,
            extended=True,
        )
        respond.due_at = due[deadlines.RESPOND]
        request.extended_at, request.extension_reason = now, reason
    elif event in (Event.COMPLETE, Event.REJECT, Event.CANCEL):
        request.closed_at = now
        if event is not Event.CANCEL:
            for d in request.deadlines:
                # a receipt confirmation owed by its own deadline is not met by a late answer
                # (CCPA regs 7021(a)): only an answer sent in time also confirms receipt
                if d.met_at is None and (d.obligation == deadlines.RESPOND or now <= d.due_at):
                    d.met_at = now
        _end_interim_restriction(session, request, event, now)


_LIFT_REASONS = {
    (RequestType.RECTIFICATION, Event.COMPLETE): N_("your data was rectified."),
    (RequestType.RECTIFICATION, Event.REJECT): N_("we verified your data and found it accurate."),
    (RequestType.OBJECTION, Event.COMPLETE): N_(
        "your objection was upheld; we no longer process your data for this purpose."
    ),
    (RequestType.OBJECTION, Event.REJECT): N_(
        "we found compelling legitimate grounds that override your objection."
    ),
}
_WITHDRAWN = N_("your request was withdrawn.")


def _end_interim_restriction(
    session: Session, request: DataSubjectRequest, event: Event, now: datetime
) -> None:
    """Closing a contest or an objection ends its interim restriction (Art. 18(1)(a),(d))."""
    if not restriction.needs_interim(request) or request.subject_id is None:
        return
    subject = session.get(Subject, request.subject_id)
    if subject is None or restriction.ground(request) not in (subject.restriction_grounds or []):
        return
    reason = _LIFT_REASONS.get((RequestType(request.type), event), _WITHDRAWN)
    restriction.release(
        session,
        subject,
        [restriction.ground(request)],
        reason=reason,
        actor=request.claimed_by or "smt",
        now=now,
    )


def transition(
    session: Session,
    request: DataSubjectRequest,
    event: Event | str,
    *,
    actor: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
    at: datetime | None = None,
) -> DataSubjectRequest:
    """The only place a request's status changes (``at``: when an acknowledgement was sent,
    if earlier than now).  Raises ``InvalidTransitionError`` for an event
    not allowed in the current status (nothing is changed then)."""
    try:
        event = Event(event)
    except ValueError as exc:
        raise InvalidTransitionError(
            f"unknown event {event!r}; events: {', '.join(e.value for e in Event)}"
        ) from exc
    now = now or datetime.now(UTC)
    current = RequestStatus(request.status) if request.status else None
    target = TRANSITIONS.get((current, event))
    if target is None:
        allowed = sorted(e.value for (s, e) in TRANSITIONS if s == current)
        raise InvalidTransitionError(
            f"request {request.id}: cannot {event.value} a request that is {current};"
            f" allowed from {current}: {', '.join(allowed) or 'nothing (final status)'}"
        )
    if event in NEEDS_REASON and not reason:
        raise InvalidTransitionError(f"{event.value} needs a reason (it is audited)")
    if at is not None and event is not Event.ACKNOWLEDGE:
        raise InvalidTransitionError("only an acknowledgement takes a time of its own")
    _apply(session, request, event, now, reason, at)
    request.status = target.value
    request.updated_at = now
    if event is Event.START:
        request.claimed_by = actor
    if event is Event.SUBMIT:
        session.add(request)
    request_id = request.id
    try:
        session.flush()
    except StaleDataError as exc:
        raise ConcurrentUpdateError(
            f"request {request_id} was changed by another worker; roll back, reload and retry"
        ) from exc
    audit.append(
        session,
        action=f"dsr.{event.value}",
        object_type="dsr",
        object_id=request.id,
        subject_ref=request.subject_ref,
        details={
            "from": current.value if current else None,
            "to": target.value,
            "type": request.type,
            "regime": request.regime,
            **({"reason": reason} if reason else {}),
            **({"at": at.isoformat()} if at else {}),
            **(details or {}),
        },
        actor=actor,
        now=now,
    )
    if current != target:
        metrics.DSR_TRANSITIONS.labels(
            type=request.type, regime=request.regime, status=target
        ).inc()
    return request


def submit(
    session: Session,
    *,
    subject_id: str,
    rtype: RequestType | str,
    regime: Regime | str,
    received_at: datetime | None = None,
    time_zone: str | None = None,
    country: str | None = None,
    controller_time_zone: str | None = None,
    payload: dict[str, Any] | None = None,
    actor: str = "smt",
    now: datetime | None = None,
) -> DataSubjectRequest:
    """Record a request and its deadlines.

    GDPR deadlines are dated and counted in the controller's time zone (the day the request
    reaches the controller; ``controller_time_zone``, default the regime's), CCPA and PDPA ones
    in the subject's (``time_zone``, else stored, else the regime's).  ``country`` (ISO 3166
    alpha-2) is the subject's: its public holidays move a GDPR period's end (Reg. 1182/71);
    a new subject stores it."""
    now = now or datetime.now(UTC)
    try:
        regime, rtype = Regime(regime), RequestType(rtype)
    except ValueError as exc:
        raise ComplianceError(
            f"{exc}; regimes: {[r.value for r in Regime]}, types: {[t.value for t in RequestType]}"
        ) from exc
    deadlines.check_type(regime, rtype)
    received_at = received_at or now
    if received_at.tzinfo is None:
        raise ComplianceError("received_at must be timezone-aware (e.g. 2026-11-25T10:00:00Z)")
    if received_at > now + CLOCK_SKEW:
        raise ComplianceError(
            f"received_at {received_at.isoformat()} is in the future; give the time the request"
            " actually arrived"
        )
    _check_payload(rtype, payload or {})
    if country is not None and not (len(country) == 2 and country.isalpha()):
        raise ComplianceError(
            f"country {country!r}: give the subject's ISO 3166 alpha-2 code, e.g. FR or DE"
        )
    subject = ensure_subject(
        session, subject_id, time_zone=time_zone, country=country, actor=actor, now=now
    )
    if regime is Regime.GDPR:
        zone = controller_time_zone or DEFAULT_TIME_ZONE[regime]
    else:
        zone = time_zone or subject.time_zone or DEFAULT_TIME_ZONE[regime]
    payload = dict(payload or {})
    if country or subject.country:
        payload.setdefault("country", (country or subject.country or "").upper())
    due = deadlines.compute(regime, rtype, received_at, zone, country=payload.get("country"))
    request = DataSubjectRequest(
        id=str(uuid.uuid4()),
        subject_id=subject.id,
        subject_ref=audit.subject_ref(subject),
        type=rtype.value,
        regime=regime.value,
        time_zone=zone,
        received_at=received_at,
        payload=payload,
        result={},
        deadlines=[Deadline(obligation=o, due_at=d) for o, d in due.items()],
    )
    transition(session, request, Event.SUBMIT, actor=actor, now=now)
    if restriction.needs_interim(request):
        basis = "GDPR Art. 18(1)(a)" if rtype is RequestType.RECTIFICATION else "GDPR Art. 18(1)(d)"
        restriction.restrict(
            session, subject, restriction.ground(request), basis=basis, actor=actor, now=now
        )
    return request


CLOCK_SKEW = timedelta(minutes=5)
CHANGE_TYPES = frozenset({RequestType.RECTIFICATION, RequestType.CORRECT})


def _check_payload(rtype: RequestType, payload: dict[str, Any]) -> None:
    """Refuse at submission what execution would refuse later (nothing is stored then)."""
    changes = payload.get("changes")
    if changes is None:
        return
    if rtype not in CHANGE_TYPES:
        raise ComplianceError(f"only rectification/correct requests take changes, not {rtype}")
    if not isinstance(changes, dict) or not changes:
        raise ComplianceError('changes must be a JSON object, e.g. {"locale": "fr"}')
    unknown = sorted(set(changes) - set(RECTIFIABLE))
    if unknown:
        raise ComplianceError(
            f"cannot rectify {unknown}: the store holds only {list(RECTIFIABLE)}"
        )
    bad = sorted(k for k, v in changes.items() if v is not None and not isinstance(v, str))
    if bad:
        raise ComplianceError(f"changes {bad}: give each value as a string (or null)")


def get_request(
    session: Session, request_id: str, *, for_update: bool = False
) -> DataSubjectRequest:
    stmt = select(DataSubjectRequest).where(DataSubjectRequest.id == request_id)
    if for_update:
        stmt = stmt.with_for_update()
    request = session.execute(stmt).scalar_one_or_none()
    if request is None:
        raise NotFoundError(f"no data-subject request {request_id}; list them with `smt dsr list`")
    return request


def claim(
    session: Session, request_id: str, *, worker: str, now: datetime | None = None
) -> DataSubjectRequest | None:
    """Start the request for ``worker`` unless another worker has it or it is closed.

    On PostgreSQL the row is locked (``SELECT ... FOR UPDATE``) until the caller commits, so a
    second worker waits and then sees ``in_progress``; everywhere the version check refuses a
    stale write.  Returns None when the request is not claimable.
    """
    request = get_request(session, request_id, for_update=True)
    if RequestStatus(request.status) not in CLAIMABLE:
        return None
    try:
        return transition(session, request, Event.START, actor=worker, now=now)
    except ConcurrentUpdateError:
        return None


def deadline_state(d: Deadline, request: DataSubjectRequest, now: datetime | None = None) -> str:
    """``met`` (in time), ``late`` (done after the due time), ``missed`` (not done, and past due
    or never to be done: the request closed without it), ``open``, or ``void`` (cancelled)."""
    now = now or datetime.now(UTC)
    if d.met_at is not None:
        return "met" if d.met_at <= d.due_at else "late"
    if request.status == RequestStatus.CANCELLED:
        return "void"
    if request.closed_at is not None or now > d.due_at:
        return "missed"
    return "open"


def describe(request: DataSubjectRequest, now: datetime | None = None) -> dict[str, Any]:
    return {
        "id": request.id,
        "type": request.type,
        "regime": request.regime,
        "status": request.status,
        "received_at": request.received_at.isoformat(),
        "deadlines": [
            {
                "obligation": d.obligation,
                "due_at": d.due_at.isoformat(),
                "met_at": d.met_at.isoformat() if d.met_at else None,
                "state": deadline_state(d, request, now),
            }
            for d in request.deadlines
        ],
        "acknowledged_at": request.acknowledged_at.isoformat() if request.acknowledged_at else None,
        "extended": request.extended_at is not None,
        "export": request.result.get("export"),
    }
