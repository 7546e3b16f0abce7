"""Produce the notices of a breach: write them to the output store and record them.

Refused, with the missing items named, while the incident lacks what every notice must carry
(nature, categories, approximate numbers, measures, a real contact point: GDPR Art. 33(3),
34(2)).  Resumable: a notice already recorded for the same audience, regime, subject and phase
is not produced again.  Files: ``<output>/<breach>/authority/<regime>-<obligation>-phase<N>.
<locale>.txt``, ``<output>/<breach>/public/<regime>.<locale>.txt`` and ``<output>/<breach>/
subjects/<pseudonym>.<locale>.txt`` (the pseudonym is an HMAC of breach and subject id under a
key derived from the audit key, which is kept outside the database: whoever can guess subject
ids cannot link notice files to them without that key).

Languages: each authority its own (:data:`AUTHORITY_LOCALES`; GDPR's lead authority from the
setting); each subject the subject's locale, else the language of the subject's country or
else English, flagged ``locale_fallback`` in the notice record (never a regime's language: a
subject whose country we do not know gets English, not Japanese because ``appi`` sorts first).
A subject with no stored country still gets a notice.  Such a subject is owed a notice under EVERY regime of the incident that owes
subjects notices (stricter reading: we cannot rule any of them out): one notice is produced
(California's format when California owes one, else the common text, which then also carries
what APPI Rules Art. 10 asks), flagged ``jurisdiction_fallback``, and counts for each of those
regimes (``detail["covers"]``).

A subjects deadline is met only when every affected subject it covers was notified: the
subjects linked (``report --subject``, ``update --subject``) got their notices, and those plus
the notices recorded as sent by other means (``notify --notified-otherwise N --channel TEXT``:
a letter campaign, a call centre; recorded as such, audited, no file) reach the approximate
number affected.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem
from sqlalchemy.orm import Session

from compliance import audit
from compliance import breach_checks as checks
from compliance.breach_checks import IncompleteBreachError
from compliance.breach_deadlines import (
    Obligation,
    Policy,
    Regime,
    RiskLevel,
    is_late,
    regimes_for_jurisdictions,
)
from compliance.breach_models import BreachDeadline, BreachIncident, BreachNotice
from compliance.breach_notices import (
    NoticeContent,
    RenderedNotice,
    render_authority_notice,
    render_california_notice,
    render_subject_notice,
)
from compliance.breach_store import (
    SUBJECTS_OTHER,
    TRANSITIONS,
    BreachEvent,
    BreachStatus,
    covered_regimes,
    mark_deadline,
    missing_of,
    transition,
)
from compliance.errors import InvalidTransitionError
from compliance.files import write_bytes_atomic
from compliance.i18n import DEFAULT_LOCALE, normalize_locale
from compliance.models import Subject
from mpc.errors import InputError

AUTHORITY = Obligation.AUTHORITY.value
BASIS = {
    "gdpr": "GDPR Art. 33",
    "pdpa": "PDPA s. 26D",
    "california": "Cal. Civ. Code 1798.82",
    "appi": "APPI Art. 26",
    "lgpd": "LGPD Art. 48",
}
# The language each authority reads: the PPC (Japan) Japanese, the PDPC (Singapore) English,
# the ANPD (Brazil) Portuguese, California's Attorney General English.  GDPR: the lead
# supervisory authority's, from SMT_BREACH_AUTHORITY_LOCALE (or --authority-locale).
AUTHORITY_LOCALES = {"appi": "ja", "pdpa": "en", "lgpd": "pt_BR", "california": "en"}
# A subject without a usable locale: the language of the country, then of the regime.
COUNTRY_LOCALES = {
    "JP": "ja",
    "BR": "pt_BR",
    "PT": "pt_BR",
    "FR": "fr",
    "BE": "fr",
    "LU": "fr",
    "DE": "de",
    "AT": "de",
    "LI": "de",
    "ES": "es",
    "CN": "zh",
    "TW": "zh",
}
_PSEUDONYM_LABEL = b"smt breach notice pseudonym v1"


@dataclass
class NotifyResult:
    breach_id: str
    authority: int = 0
    subjects: int = 0
    public: int = 0
    skipped: int = 0
    fallbacks: int = 0  # subject notices sent in a fallback language or regime (flagged)
    otherwise: int = 0  # subjects recorded as notified by other means
    by_locale: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)  # regime -> subjects not yet reached
    waiting: list[str] = field(default_factory=list)  # deadlines that could not be met yet

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.breach_id,
            "authority_notices": self.authority,
            "subject_notices": self.subjects,
            "public_notices": self.public,
            "already_done": self.skipped,
            "fallback_notices": self.fallbacks,
            "notified_otherwise": self.otherwise,
            "by_locale": dict(sorted(self.by_locale.items())),
            "subjects_pending": dict(sorted(self.pending.items())),
            "waiting": self.waiting,
        }


def _content(
    incident: BreachIncident,
    regime: str,
    deadline: BreachDeadline | None,
    phase: int,
    *,
    final: bool = False,
    complement: str | None = None,
    business: str | None = None,
    covers: tuple[str, ...] = (),
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
        basis="APPI Rules Art. 8(2)" if final else BASIS[regime],
        phase=phase,
        late_reasons=incident.late_reasons if late else None,
        due_at=deadline.due_at if deadline is not None else None,
        cause=incident.cause,
        prevention=incident.prevention,
        final=final,
        regime=regime,
        complement=complement,
        business=business,
        occurred_until=incident.occurred_until,
        occurred_estimated=bool(incident.occurred_estimated),
        law_enforcement_delay=incident.law_enforcement_delay,
        third_party_source=bool(incident.third_party_source),
        identity_services=incident.identity_services,
        secondary_damage=incident.secondary_damage,
        # APPI Rules Art. 10: a notice standing in for APPI's states the cause
        appi_subject="appi" in covers,
    )


def _private_dirs(path: str) -> None:
    """Create the missing folders of *path* 0700 (``os.makedirs`` gives its mode to the last
    one only): notices hold facts about subjects, like exports."""
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        os.makedirs(folder, mode=0o700, exist_ok=True)


def _write(url: str, text: str) -> str:
    """Write a notice whole (0600 when local, folders 0700, as exports); its SHA-256."""
    data = text.encode()
    fs, path = fsspec.core.url_to_fs(url)
    if isinstance(fs, LocalFileSystem):
        _private_dirs(os.path.dirname(path))
    write_bytes_atomic(url, data)
    return hashlib.sha256(data).hexdigest()


def _authority_url(base: str, d: BreachDeadline, phase: int, locale: str) -> str:
    return f"{base}/authority/{d.regime}-{d.obligation}-phase{phase}.{locale}.txt"


def _pseudonym(breach_id: str, subject_id: str) -> str:
    """HMAC-SHA256 of breach and subject id under a key derived from the audit key (kept
    outside the database, as ``compliance.suppression`` does with its own label)."""
    key = hmac.new(audit.audit_key(), _PSEUDONYM_LABEL, hashlib.sha256).digest()
    msg = f"{breach_id}\x00{subject_id}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]


def subject_locale(subject: Subject) -> tuple[str, bool]:
    """The subject's locale, or a fallback (then ``True``): the country's language, else
    English (the documented fallback; never the language of whichever regime sorts first)."""
    if subject.locale:
        try:
            return normalize_locale(subject.locale), False
        except InputError:
            pass
    country = (subject.country or "").upper()
    return COUNTRY_LOCALES.get(country, DEFAULT_LOCALE), True


def _record(
    session: Session,
    incident: BreachIncident,
    *,
    audience: str,
    regime: str,
    notice: RenderedNotice,
    url: str,
    tz: str,
    phase: int,
    now: datetime,
    subject_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    incident.notices.append(
        BreachNotice(
            breach_id=incident.id,
            audience=audience,
            regime=regime,
            subject_id=subject_id,
            phase=phase,
            locale=notice.locale,
            tz=tz,
            url=url,
            sha256=_write(url, notice.body),
            produced_at=now,
            detail=detail or {},
        )
    )


def _check_ready(
    incident: BreachIncident, late: list[BreachDeadline], late_reasons: str | None
) -> None:
    if (BreachStatus(incident.status), BreachEvent.NOTIFY) not in TRANSITIONS:
        raise InvalidTransitionError(
            f"breach {incident.id} is {incident.status}: assess it first (`smt breach assess`)"
            if incident.status == BreachStatus.REPORTED
            else f"breach {incident.id} is {incident.status}: nothing more can be notified"
        )
    missing = missing_of(incident)
    if missing:
        raise IncompleteBreachError(
            incident.id, missing, basis=checks.notice_rules(incident.regimes)
        )
    if late and not (late_reasons or incident.late_reasons):
        names = ", ".join(f"{d.regime}/{d.obligation}" for d in late)
        raise InvalidTransitionError(
            f"breach {incident.id}: the {names} deadline has passed; give the reasons for the"
            " delay (--late-reasons), they go into the notification (GDPR Art. 33(1))"
        )


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
    final: bool = False,
    complement: str | None = None,
    business: str | None = None,
    notified_otherwise: int | None = None,
    channel: str | None = None,
    otherwise_regimes: list[str] | None = None,
) -> NotifyResult:
    """Authority notifications for every open authority deadline (a new phase when all were
    already sent: Art. 33(4); for LGPD that update is the complementary information; an update
    goes out only with something new: a fact changed since the regime's last notice, or
    *complement*), the
    public notice where one replaces individual notices, every affected subject's notice, and
    California's sample copy to the Attorney General once residents were notified.
    ``final``: only the APPI final report (Rules Art. 8(2)), which needs cause and prevention.
    ``business``: the name California's resident notice gives (1798.82(d)(2)(A)).
    ``notified_otherwise``: that many subjects were notified by other means (*channel*), for
    *otherwise_regimes* (default: every regime whose subjects deadline is open)."""
    now = now or datetime.now(UTC)
    gdpr_locale = normalize_locale(authority_locale)
    if complement is not None:
        complement = checks.text_block(complement, "complement") or None
    wanted = (Obligation.AUTHORITY_FINAL.value,) if final else (AUTHORITY,)
    owed = [d for d in incident.deadlines if d.owed is not False]
    open_authority = [d for d in owed if d.obligation in wanted and d.met_at is None]
    late = [d for d in open_authority if is_late_row(d, now)]
    _check_ready(incident, late, late_reasons)
    if not final:
        _check_california(incident, owed, business)
    other = _otherwise(incident, notified_otherwise, channel, otherwise_regimes, final)
    if final:
        missing = [
            what
            for what, value in (
                ("the cause (--cause)", incident.cause),
                ("the measures to prevent recurrence (--prevention)", incident.prevention),
            )
            if not value
        ]
        if missing:
            raise IncompleteBreachError(incident.id, missing, basis="APPI Rules Art. 8(1)-(2)")
        if not open_authority:
            raise InvalidTransitionError(
                f"breach {incident.id}: no APPI final report is owed or open"
            )
    zones = (policy or Policy()).zones
    out = NotifyResult(breach_id=incident.id)
    phase = incident.phase + 1
    changes: dict[str, object] = {}
    if late_reasons:
        changes["late_reasons"] = late_reasons
        incident.late_reasons = late_reasons
    targets = open_authority or [
        d for d in owed if d.obligation == AUTHORITY and _has_news(incident, d.regime, complement)
    ]
    if targets:
        changes["phase"] = phase
    base = output_url.rstrip("/") + f"/{incident.id}"
    by_key = {(d.regime, d.obligation): d for d in owed}
    if other is not None:
        _record_otherwise(incident, out, other, now)
    for d in targets:
        update = d.met_at is not None
        locale = gdpr_locale if d.regime == "gdpr" else AUTHORITY_LOCALES[d.regime]
        content = _content(
            incident,
            d.regime,
            d if is_late_row(d, now) else None,
            phase,
            final=final,
            complement=complement,
        )
        notice = render_authority_notice(content, locale=locale, tz=d.tz)
        url = _authority_url(base, d, phase, notice.locale)
        _record(
            session,
            incident,
            audience="authority",
            regime=d.regime,
            notice=notice,
            url=url,
            tz=d.tz,
            phase=phase,
            now=now,
            detail={"obligation": d.obligation, "update": update, "complement": bool(complement)},
        )
        mark_deadline(session, d, "met", actor=actor, now=now)
        owed_complement = by_key.get((d.regime, Obligation.AUTHORITY_COMPLEMENT.value))
        # LGPD: an update with something new (_has_news) is the complementary information
        if update and owed_complement is not None:
            mark_deadline(session, owed_complement, "met", actor=actor, now=now)
        out.authority += 1
    if not final:
        _public_notices(session, incident, out, base, gdpr_locale, actor, now, business)
        _subject_notices(session, incident, out, base, zones, now, business)
        _mark_subject_deadlines(session, incident, out, actor, now)
        _attorney_general(session, incident, out, base, phase, actor, now, business)
        for d in owed:
            if d.obligation == Obligation.AUTHORITY_COMPLEMENT.value and d.met_at is None:
                out.waiting.append(f"{d.regime}/{d.obligation}")
    if out.authority:  # the Attorney General's sample is an authority notice too
        changes["phase"] = phase
    if out.authority + out.subjects + out.public + out.otherwise == 0:
        raise InvalidTransitionError(
            f"breach {incident.id}: nothing to send: no notification is open and no fact"
            " changed since the last one; to send an update (GDPR Art. 33(4)) or the LGPD complementary"
            " information, first record what changed (`smt breach update`) or give"
            " --complement TEXT"
        )
    session.flush()
    transition(
        session,
        incident,
        BreachEvent.NOTIFY,
        actor=actor,
        changes=changes,
        details={
            "authority_notices": out.authority,
            "subject_notices": out.subjects,
            "public_notices": out.public,
            "fallback_notices": out.fallbacks,
            "by_locale": out.by_locale,
            **(
                {"notified_otherwise": out.otherwise, "channel": other[1], "covers": other[2]}
                if other is not None
                else {}
            ),
            "final": final,
        },
        policy=policy,
        now=now,
    )
    return out


def _has_news(incident: BreachIncident, regime: str, complement: str | None) -> bool:
    """An authority update has something to say: *complement* text, or a fact changed (by
    ``update`` or ``assess``) after the regime's last authority notice.  Stricter reading of
    ANPD Res. 15/2024 and Art. 33(4): a copy of the first notice is no complementary
    information and no new phase."""
    if complement:
        return True
    sent = [
        n.produced_at
        for n in incident.notices
        if n.audience == "authority" and n.regime == regime
        and n.detail.get("obligation", AUTHORITY) == AUTHORITY
    ]
    changed = incident.facts_updated_at
    return changed is not None and (not sent or changed > max(sent))


def _check_california(
    incident: BreachIncident, owed: list[BreachDeadline], business: str | None
) -> None:
    """What Cal. Civ. Code 1798.82(d)(2) asks of the resident notice (and the Attorney
    General's sample), before any California notice is produced."""
    due = [
        d
        for d in owed
        if d.regime == "california"
        and d.obligation in (Obligation.SUBJECTS.value, Obligation.ATTORNEY_GENERAL.value)
        and d.met_at is None
    ]
    if not due:
        return
    missing = []
    if not business:
        missing.append("the name of the business (SMT_BREACH_BUSINESS_NAME; 1798.82(d)(2)(A))")
    if "police_informed" in incident.measures and incident.law_enforcement_delay is None:
        missing.append(
            "whether a law enforcement investigation delayed the notice"
            " (--law-enforcement-delay or --no-law-enforcement-delay; 1798.82(d)(2)(D))"
        )
    if (
        "identity" in incident.categories
        and not incident.third_party_source
        and not incident.identity_services
    ):
        missing.append(
            "the offer of identity theft prevention and mitigation services, 12 months at no"
            " cost, and how to take it up (--identity-services TEXT, or --third-party-source"
            " when the breach was at a third party; 1798.82(d)(2)(G))"
        )
    if missing:
        raise IncompleteBreachError(incident.id, missing, basis="Cal. Civ. Code 1798.82(d)(2)")


def _public_notices(
    session: Session,
    incident: BreachIncident,
    out: NotifyResult,
    base: str,
    locale: str,
    actor: str,
    now: datetime,
    business: str | None,
) -> None:
    """GDPR Art. 34(3)(c): a public communication instead of individual notices."""
    for d in incident.deadlines:
        if (
            d.obligation != Obligation.PUBLIC_NOTICE.value
            or d.met_at is not None
            or d.owed is False
        ):
            continue
        notice = render_subject_notice(
            _content(incident, d.regime, None, 1, business=business),
            locale=locale,
            tz=d.tz,
            issued_at=now,
        )
        url = f"{base}/public/{d.regime}.{notice.locale}.txt"
        _record(
            session,
            incident,
            audience="public",
            regime=d.regime,
            notice=notice,
            url=url,
            tz=d.tz,
            phase=1,
            now=now,
        )
        mark_deadline(session, d, "met", actor=actor, now=now)
        out.public += 1


def _subject_notices(
    session: Session,
    incident: BreachIncident,
    out: NotifyResult,
    base: str,
    zones: Any,
    now: datetime,
    business: str | None,
) -> None:
    owed_all = sorted(
        d.regime for d in incident.deadlines if d.obligation == "subjects" and d.owed is not False
    )
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
        own = sorted(r.value for r in regimes_for_jurisdictions([code or ""]))
        # Stricter reading: a subject whose jurisdiction we do not know (or that none of our
        # regimes covers) is still notified, under the incident's first regime owing notices.
        owed = [r for r in own if r in owed_all] if own else owed_all
        if not owed:
            continue  # the subject's own regime exempts this breach (e.g. encrypted data)
        regime = "california" if not own and "california" in owed else owed[0]
        covers = tuple(owed) if not own else (regime,)
        locale, locale_fallback = subject_locale(subject)
        tz = subject.time_zone or zones[Regime(regime)]
        content = _content(incident, regime, None, 1, business=business, covers=covers)
        render = render_california_notice if regime == "california" else render_subject_notice
        notice = render(content, locale=locale, tz=tz, issued_at=now)
        flags: dict[str, Any] = {"locale_fallback": locale_fallback, "jurisdiction_fallback": not own}
        if not own:  # counts for every regime it stands in for
            flags["covers"] = list(covers)
        _record(
            session,
            incident,
            audience="subject",
            regime=regime,
            notice=notice,
            url=f"{base}/subjects/{_pseudonym(incident.id, subject.id)}.{locale}.txt",
            tz=tz,
            phase=1,
            now=now,
            subject_id=subject.id,
            detail=flags,
        )
        out.subjects += 1
        out.fallbacks += int(locale_fallback or not own)
        out.by_locale[locale] = out.by_locale.get(locale, 0) + 1


def _subject_counts(incident: BreachIncident) -> tuple[dict[str, int], int]:
    """Subjects notified per regime (a fallback notice and a record of notices sent by other
    means count for every regime they cover) and in all (each notice or record once)."""
    sent: dict[str, int] = {}
    total = 0
    for n in incident.notices:
        if n.audience not in ("subject", SUBJECTS_OTHER):
            continue
        num = int(n.detail.get("count", 1)) if n.audience == SUBJECTS_OTHER else 1
        total += num
        for r in covered_regimes(n):
            sent[r] = sent.get(r, 0) + num
    return sent, total


def _remaining(incident: BreachIncident, regime: str) -> int:
    """Subjects the regime's deadline still waits for (0: every one was notified)."""
    sent, total = _subject_counts(incident)
    need = incident.affected_by_regime.get(regime)
    have = sent.get(regime, 0) if need is not None else total
    need = incident.affected_subjects if need is None else need
    if sent.get(regime, 0) == 0:
        return max(need - have, 1)
    return max(need - have, 0)


def _mark_subject_deadlines(
    session: Session, incident: BreachIncident, out: NotifyResult, actor: str, now: datetime
) -> None:
    """Met only when every notice the deadline covers exists: each linked subject assigned to
    the regime got one, and those notified (linked or by other means) reach the approximate
    number affected."""
    for d in incident.deadlines:
        if d.obligation != "subjects" or d.met_at is not None or d.owed is False:
            continue
        left = _remaining(incident, d.regime)
        if left == 0:
            mark_deadline(session, d, "met", actor=actor, now=now)
        else:
            out.pending[d.regime] = left
            out.waiting.append(f"{d.regime}/subjects")


def _otherwise(
    incident: BreachIncident,
    count: int | None,
    channel: str | None,
    regimes: list[str] | None,
    final: bool,
) -> tuple[int, str, list[str]] | None:
    """Check a record of subjects notified by other means: (count, channel, regimes)."""
    if count is None and channel is None and not regimes:
        return None
    if final:
        raise InputError("--notified-otherwise records subject notices; not with --final")
    if count is None or channel is None:
        raise InputError(
            "give both --notified-otherwise N and --channel TEXT (how they were notified)"
        )
    count = checks.count(count, "notified-otherwise") or 0
    if count < 1:
        raise InputError("--notified-otherwise must be 1 or more")
    channel = checks.one_line(channel, "channel", max_len=checks.MAX_CONTACT)
    open_ = sorted(
        d.regime
        for d in incident.deadlines
        if d.obligation == "subjects" and d.met_at is None and d.owed is not False
    )
    wanted = sorted(set(regimes)) if regimes else open_
    closed = [r for r in wanted if r not in open_]
    if not wanted or closed:
        raise InvalidTransitionError(
            f"breach {incident.id}: no open subjects deadline for {', '.join(closed) or 'any'}"
            f" regime (open: {', '.join(open_) or 'none'}); nothing to record"
        )
    # Stricter reading: never count more subjects than are still owed a notice, so a record
    # cannot make a deadline met that the approximate numbers do not support.
    left = min(_remaining(incident, r) for r in wanted)
    if count > left:
        raise InputError(
            f"--notified-otherwise {count} is more than the {left} subjects still owed a"
            " notice; correct the number, or --affected with `smt breach update`"
        )
    return count, channel, wanted


def _record_otherwise(
    incident: BreachIncident, out: NotifyResult, other: tuple[int, str, list[str]], now: datetime
) -> None:
    count, channel, regimes = other
    incident.notices.append(
        BreachNotice(
            breach_id=incident.id,
            audience=SUBJECTS_OTHER,
            regime=regimes[0],
            subject_id=None,
            phase=1,
            locale="",
            tz="UTC",
            url="",  # sent by other means: no file here
            sha256=hashlib.sha256(channel.encode()).hexdigest(),
            produced_at=now,
            detail={"count": count, "channel": channel, "covers": regimes},
        )
    )
    out.otherwise += count


def _attorney_general(
    session: Session,
    incident: BreachIncident,
    out: NotifyResult,
    base: str,
    phase: int,
    actor: str,
    now: datetime,
    business: str | None,
) -> None:
    """Cal. Civ. Code 1798.82(f): a sample copy of the resident notice, once residents were
    notified (its 15 days run from then)."""
    for d in incident.deadlines:
        if (
            d.obligation != Obligation.ATTORNEY_GENERAL.value
            or d.met_at is not None
            or d.owed is False
        ):
            continue
        if not any(
            n.audience in ("subject", SUBJECTS_OTHER) and d.regime in covered_regimes(n)
            for n in incident.notices
        ):
            out.waiting.append(f"{d.regime}/{d.obligation}")
            continue
        notice = render_california_notice(
            _content(incident, d.regime, None, 1, business=business),
            locale=AUTHORITY_LOCALES["california"],
            tz=d.tz,
            issued_at=now,
        )
        url = _authority_url(base, d, phase, notice.locale)
        _record(
            session,
            incident,
            audience="authority",
            regime=d.regime,
            notice=notice,
            url=url,
            tz=d.tz,
            phase=phase,
            now=now,
            detail={"obligation": d.obligation, "sample": True},
        )
        mark_deadline(session, d, "met", actor=actor, now=now)
        out.authority += 1


def is_late_row(d: BreachDeadline, now: datetime) -> bool:
    return d.due_at is not None and now > d.due_at


__all__ = ["NotifyResult", "is_late", "produce_notices", "subject_locale"]
