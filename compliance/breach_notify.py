"""Produce the notices of a breach: write them to the output store and record them.

Resumable: a notice already recorded for the same audience, regime, subject and phase is not
produced again.  Files: ``<output>/<breach>/authority/<regime>-phase<N>.<locale>.txt`` and
``<output>/<breach>/subjects/<pseudonym>.<locale>.txt`` (the pseudonym is a hash, never the
subject id).  Each subject's notice is in the subject's locale and time zone (``en`` and the
regime's zone when the store has none).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import fsspec
from sqlalchemy.orm import Session

from compliance.breach_deadlines import (
    Obligation,
    Policy,
    Regime,
    RiskLevel,
    is_late,
    regimes_for_jurisdictions,
)
from compliance.breach_models import BreachDeadline, BreachIncident, BreachNotice
from compliance.breach_notices import NoticeContent, render_authority_notice, render_subject_notice
from compliance.breach_store import (
    TRANSITIONS,
    BreachEvent,
    BreachStatus,
    mark_deadline,
    transition,
)
from compliance.errors import InvalidTransitionError
from compliance.i18n import DEFAULT_LOCALE, SUPPORTED_LOCALES
from compliance.models import Subject

AUTHORITY_OBLIGATIONS = (Obligation.AUTHORITY.value, Obligation.ATTORNEY_GENERAL.value)
BASIS = {
    "gdpr": "GDPR Art. 33",
    "pdpa": "PDPA s. 26D",
    "california": "Cal. Civ. Code 1798.82",
    "appi": "APPI Art. 26",
    "lgpd": "LGPD Art. 48",
}


@dataclass
class NotifyResult:
    breach_id: str
    authority: int = 0
    subjects: int = 0
    skipped: int = 0
    by_locale: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.breach_id,
            "authority_notices": self.authority,
            "subject_notices": self.subjects,
            "already_done": self.skipped,
            "by_locale": dict(sorted(self.by_locale.items())),
        }


def _content(
    incident: BreachIncident, regime: str, deadline: BreachDeadline | None, phase: int
) -> NoticeContent:
    late = deadline is not None and incident.late_reasons is not None
    return NoticeContent(
        reference=incident.id,
        nature=incident.nature,
        aware_at=incident.aware_at,
        affected_subjects=incident.affected_subjects,
        affected_records=incident.affected_records,
        categories=tuple(incident.categories),
        measures=tuple(incident.measures),
        risk=RiskLevel(incident.risk_level or "medium"),
        contact=incident.contact,
        occurred_at=incident.occurred_at,
        encrypted=incident.encrypted,
        basis=BASIS[regime],
        phase=phase,
        late_reasons=incident.late_reasons if late else None,
        due_at=deadline.due_at if deadline is not None else None,
    )


def _write(url: str, text: str) -> str:
    with fsspec.open(url, "w", encoding="utf-8") as fh:
        fh.write(text)
    return hashlib.sha256(text.encode()).hexdigest()


def _pseudonym(breach_id: str, subject_id: str) -> str:
    return hashlib.sha256(f"{breach_id}\x00{subject_id}".encode()).hexdigest()[:20]


def _subject_locale(subject: Subject) -> str:
    base = (subject.locale or "").replace("-", "_").split("_")[0].lower()
    return base if base in SUPPORTED_LOCALES else DEFAULT_LOCALE


def produce_notices(
    session: Session,
    incident: BreachIncident,
    *,
    output_url: str,
    authority_locale: str = DEFAULT_LOCALE,
    late_reasons: str | None = None,
    actor: str = "smt",
    policy: Policy | None = None,
    now: datetime | None = None,
) -> NotifyResult:
    """Authority notifications for every open authority deadline (a new phase when all were
    already sent: Art. 33(4)), then the notice of every affected subject owed one."""
    now = now or datetime.now(UTC)
    if (BreachStatus(incident.status), BreachEvent.NOTIFY) not in TRANSITIONS:
        raise InvalidTransitionError(
            f"breach {incident.id} is {incident.status}: assess it first (`smt breach assess`)"
            if incident.status == BreachStatus.REPORTED
            else f"breach {incident.id} is {incident.status}: nothing more can be notified"
        )
    zones = (policy or Policy()).zones
    out = NotifyResult(breach_id=incident.id)
    deadlines = {(d.regime, d.obligation): d for d in incident.deadlines}
    open_authority = [
        d for d in incident.deadlines if d.obligation in AUTHORITY_OBLIGATIONS and d.met_at is None
    ]
    late = [d for d in open_authority if d.due_at is not None and d.due_at < now]
    if late and not (late_reasons or incident.late_reasons):
        names = ", ".join(f"{d.regime}/{d.obligation}" for d in late)
        raise InvalidTransitionError(
            f"breach {incident.id}: the {names} deadline has passed; give the reasons for the"
            " delay (--late-reasons), they go into the notification (GDPR Art. 33(1))"
        )
    phase = incident.phase + 1
    changes: dict[str, object] = {"phase": phase}
    if late_reasons:
        changes["late_reasons"] = late_reasons
        incident.late_reasons = late_reasons
    targets = open_authority or [d for d in incident.deadlines if d.obligation == "authority"]
    base = output_url.rstrip("/") + f"/{incident.id}"
    for d in targets:
        notice = render_authority_notice(
            _content(incident, d.regime, d if is_late_row(d, now) else None, phase),
            locale=authority_locale,
            tz=d.tz,
        )
        url = f"{base}/authority/{d.regime}-{d.obligation}-phase{phase}.{notice.locale}.txt"
        session.add(
            BreachNotice(
                breach_id=incident.id,
                audience="authority",
                regime=d.regime,
                subject_id=None,
                phase=phase,
                locale=notice.locale,
                tz=d.tz,
                url=url,
                sha256=_write(url, notice.body),
                produced_at=now,
                detail={"obligation": d.obligation},
            )
        )
        mark_deadline(session, d, "met", actor=actor, now=now)
        out.authority += 1
    done = {n.subject_id for n in incident.notices if n.audience == "subject"}
    for link in incident.subjects:
        subject = session.get(Subject, link.subject_id)
        if subject is None:
            continue
        if subject.id in done:
            out.skipped += 1
            continue
        code = (
            f"{subject.country}-{subject.subdivision}" if subject.subdivision else subject.country
        )
        regimes = sorted(r.value for r in regimes_for_jurisdictions([code or ""]))
        owed = [r for r in regimes if (r, "subjects") in deadlines]
        if not owed:
            continue
        regime = owed[0]
        locale = _subject_locale(subject)
        tz = subject.time_zone or zones[Regime(regime)]
        notice = render_subject_notice(
            _content(incident, regime, None, 1), locale=locale, tz=tz, issued_at=now
        )
        url = f"{base}/subjects/{_pseudonym(incident.id, subject.id)}.{locale}.txt"
        session.add(
            BreachNotice(
                breach_id=incident.id,
                audience="subject",
                regime=regime,
                subject_id=subject.id,
                phase=1,
                locale=locale,
                tz=tz,
                url=url,
                sha256=_write(url, notice.body),
                produced_at=now,
                detail={},
            )
        )
        out.subjects += 1
        out.by_locale[locale] = out.by_locale.get(locale, 0) + 1
    session.flush()
    if incident.subjects:
        for d in incident.deadlines:
            if d.obligation == "subjects" and d.met_at is None:
                mark_deadline(session, d, "met", actor=actor, now=now)
    transition(
        session,
        incident,
        BreachEvent.NOTIFY,
        actor=actor,
        changes=changes,
        details={
            "authority_notices": out.authority,
            "subject_notices": out.subjects,
            "by_locale": out.by_locale,
        },
        now=now,
    )
    return out


def is_late_row(d: BreachDeadline, now: datetime) -> bool:
    return d.due_at is not None and now > d.due_at


__all__ = ["NotifyResult", "is_late", "produce_notices"]
