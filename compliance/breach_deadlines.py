"""Breach-notification deadlines per regime: a pure function of the facts of an incident.

Every deadline is an aware ``datetime`` in UTC (``due_at``) plus the IANA zone of the authority
it is owed to (``tz``), used only to show it.  Where the law counts *elapsed hours* (GDPR
Art. 33: 72 hours) the deadline is ``aware_at + 72h`` on the UTC time line, so a daylight-saving
change in between moves the local wall-clock time, never the instant.  Where it counts *days*
(PDPA, APPI) or *business days* (LGPD) the deadline is the end (23:59:59) of the last day in the
authority's zone.

Where the law says "without undue delay", "promptly" or "in the most expedient time", there is
no statutory instant; we set a policy target (:class:`Policy`) and mark it ``statutory=False``
so that escalation still fires.  Sources: FACTS.md, "Legal deadlines".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import holidays

from mpc.errors import InputError

PDPA_GUIDE = "PDPC Guide on Managing and Notifying Data Breaches"
# APPI Enforcement Rules Art. 7(i) (sensitive data) and (ii) (risk of financial loss)
APPI_ALWAYS_REPORTABLE = frozenset({"health", "financial", "credentials"})


class Regime(StrEnum):
    GDPR = "gdpr"
    PDPA = "pdpa"  # Singapore
    CALIFORNIA = "california"  # Cal. Civ. Code 1798.82
    APPI = "appi"  # Japan
    LGPD = "lgpd"  # Brazil, ANPD Resolution 15/2024


class Obligation(StrEnum):
    AUTHORITY = "authority"  # supervisory authority (APPI: preliminary report)
    AUTHORITY_FINAL = "authority_final"  # APPI final report
    AUTHORITY_COMPLEMENT = "authority_complement"  # LGPD: complementary information to the ANPD
    SUBJECTS = "subjects"  # the data subjects themselves
    PUBLIC_NOTICE = "public_notice"  # GDPR Art. 34(3)(c), instead of individual notices
    ASSESSMENT = "assessment"  # PDPA: finish assessing whether the breach is notifiable
    ATTORNEY_GENERAL = "attorney_general"  # California: sample notice when > 500 residents


class RiskLevel(StrEnum):
    LOW = "low"  # GDPR: "unlikely to result in a risk"
    MEDIUM = "medium"
    HIGH = "high"  # GDPR Art. 34 high risk; PDPA "significant harm"


class ExemptionReason(StrEnum):
    UNLIKELY_RISK = "unlikely_risk"
    NOT_HIGH_RISK = "not_high_risk"
    ENCRYPTED = "encrypted"
    RISK_REMOVED = "risk_removed"
    DISPROPORTIONATE_EFFORT = "disproportionate_effort"  # replaced by a public notice
    NOT_NOTIFIABLE = "not_notifiable"


REGIME_ALIASES: dict[str, Regime] = {
    "ccpa": Regime.CALIFORNIA,
    "cpra": Regime.CALIFORNIA,
    "ca": Regime.CALIFORNIA,
    "anpd": Regime.LGPD,
}

EEA = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR IE IT LV LT LU MT NL PL PT RO SK SI ES SE IS LI NO".split()
)


def parse_regime(name: str) -> Regime:
    key = name.strip().lower()
    if key in REGIME_ALIASES:
        return REGIME_ALIASES[key]
    try:
        return Regime(key)
    except ValueError:
        names = ", ".join(r.value for r in Regime)
        raise InputError(f"unknown regime {name!r}; use one of {names}") from None


def regimes_for_jurisdictions(codes: Iterable[str]) -> frozenset[Regime]:
    """Regimes that follow from subjects' jurisdictions (ISO 3166: ``FR``, ``US-CA``, ``JP``)."""
    found: set[Regime] = set()
    for code in codes:
        country, _, sub = code.strip().upper().partition("-")
        if country in EEA or country == "EU":
            found.add(Regime.GDPR)
        elif country == "SG":
            found.add(Regime.PDPA)
        elif country == "US" and sub == "CA":
            found.add(Regime.CALIFORNIA)
        elif country == "JP":
            found.add(Regime.APPI)
        elif country == "BR":
            found.add(Regime.LGPD)
    return frozenset(found)


def assess_risk(likelihood: int, severity: int) -> RiskLevel:
    """Likelihood x severity, each 1 (negligible) .. 4 (very high): <= 3 low, <= 7 medium."""
    for name, v in (("likelihood", likelihood), ("severity", severity)):
        if not 1 <= v <= 4:
            raise InputError(f"{name} must be between 1 and 4, got {v}")
    score = likelihood * severity
    if score <= 3:
        return RiskLevel.LOW
    return RiskLevel.MEDIUM if score <= 7 else RiskLevel.HIGH


@dataclass(frozen=True, kw_only=True)
class Policy:
    """Our targets where the law sets none, and the zone each authority counts days in."""

    undue_delay_hours: int = 72
    appi_preliminary_days: int = 3  # guidance: "promptly", about 3-5 days
    pdpa_notifiable_count: int = 500
    california_ag_count: int = 500
    appi_reportable_count: int = 1000
    zones: Mapping[Regime, str] = field(
        default_factory=lambda: {
            Regime.GDPR: "Europe/Brussels",
            Regime.PDPA: "Asia/Singapore",
            Regime.CALIFORNIA: "America/Los_Angeles",
            Regime.APPI: "Asia/Tokyo",
            Regime.LGPD: "America/Sao_Paulo",
        }
    )


@dataclass(frozen=True, kw_only=True)
class BreachFacts:
    aware_at: datetime
    regimes: frozenset[Regime]
    affected: int
    risk: RiskLevel
    encrypted: bool = False
    risk_removed: bool = False
    disproportionate_effort: bool = False
    assessed_at: datetime | None = None  # PDPA: when we decided whether it is notifiable
    # PDPA s. 26D(1): when we first assessed it notifiable (kept across re-assessments)
    pdpa_notifiable_at: datetime | None = None
    # PDPA s. 26D(2): when we first assessed significant harm (kept across re-assessments)
    pdpa_harm_at: datetime | None = None
    unlawful_purpose: bool = False  # APPI: final report within 60 days instead of 30
    affected_by_regime: Mapping[Regime, int] = field(default_factory=dict)
    categories: frozenset[str] = frozenset()  # codes of compliance.breach_notices.CATEGORIES
    small_agent: bool = False  # LGPD: agente de tratamento de pequeno porte (doubled deadlines)
    # first notice produced, per regime: the clocks that run from a notification
    authority_notified_at: Mapping[Regime, datetime] = field(default_factory=dict)
    subjects_notified_at: Mapping[Regime, datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("aware_at", "assessed_at", "pdpa_notifiable_at", "pdpa_harm_at"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise InputError(f"{name} must carry a time zone (e.g. 2026-10-23T10:00+02:00)")
        if self.affected < 0:
            raise InputError("affected must be zero or more")

    def count(self, regime: Regime) -> int:
        return self.affected_by_regime.get(regime, self.affected)


@dataclass(frozen=True, kw_only=True)
class Deadline:
    regime: Regime
    obligation: Obligation
    due_at: datetime | None  # UTC; None until it can be computed (PDPA before the assessment)
    statutory: bool
    basis: str
    tz: str

    @property
    def due_local(self) -> datetime | None:
        return None if self.due_at is None else self.due_at.astimezone(ZoneInfo(self.tz))


@dataclass(frozen=True, kw_only=True)
class Exemption:
    regime: Regime
    obligation: Obligation
    reason: ExemptionReason


@dataclass(frozen=True, kw_only=True)
class DeadlinePlan:
    deadlines: tuple[Deadline, ...]
    exemptions: tuple[Exemption, ...]


def _end_of_day(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(23, 59, 59), ZoneInfo(tz)).astimezone(UTC)


def _local_date(when: datetime, tz: str) -> date:
    return when.astimezone(ZoneInfo(tz)).date()


def add_business_days(start: date, days: int, country: str, subdiv: str | None = None) -> date:
    """The *days*-th business day after *start* (weekends and public holidays skipped)."""
    cal = holidays.country_holidays(country, subdiv=subdiv, years=range(start.year, start.year + 2))
    current, left = start, days
    while left:
        current += timedelta(days=1)
        if current.weekday() < 5 and current not in cal:
            left -= 1
    return current


def compute_deadlines(facts: BreachFacts, policy: Policy | None = None) -> DeadlinePlan:
    """Every obligation the facts trigger, with its deadline, and every exemption applied."""
    p = policy or Policy()
    out: list[Deadline] = []
    ex: list[Exemption] = []
    aware = facts.aware_at.astimezone(UTC)
    target = aware + timedelta(hours=p.undue_delay_hours)
    high = facts.risk is RiskLevel.HIGH

    def add(r: Regime, o: Obligation, due: datetime | None, statutory: bool, basis: str) -> None:
        out.append(
            Deadline(
                regime=r, obligation=o, due_at=due, statutory=statutory, basis=basis, tz=p.zones[r]
            )
        )

    def exempt(r: Regime, o: Obligation, why: ExemptionReason) -> None:
        ex.append(Exemption(regime=r, obligation=o, reason=why))

    def subject_exemption(r: Regime) -> ExemptionReason | None:
        if facts.encrypted:
            return ExemptionReason.ENCRYPTED
        if facts.risk_removed:
            return ExemptionReason.RISK_REMOVED
        return None

    for r in sorted(facts.regimes):
        tz = p.zones[r]
        if r is Regime.GDPR:
            if facts.risk is RiskLevel.LOW:
                exempt(r, Obligation.AUTHORITY, ExemptionReason.UNLIKELY_RISK)
            else:
                add(r, Obligation.AUTHORITY, aware + timedelta(hours=72), True, "GDPR Art. 33(1)")
            if not high:
                exempt(r, Obligation.SUBJECTS, ExemptionReason.NOT_HIGH_RISK)
            elif why := subject_exemption(r):
                exempt(r, Obligation.SUBJECTS, why)
            elif facts.disproportionate_effort:
                exempt(r, Obligation.SUBJECTS, ExemptionReason.DISPROPORTIONATE_EFFORT)
                add(r, Obligation.PUBLIC_NOTICE, target, False, "GDPR Art. 34(3)(c)")
            else:
                add(r, Obligation.SUBJECTS, target, False, "GDPR Art. 34(1)")
        elif r is Regime.PDPA:
            # PDPA s. 26C(3) requires the assessment "in a reasonable and expeditious manner"
            # and sets no number of days; the 30 days come from the PDPC's "Guide on Managing
            # and Notifying Data Breaches under the PDPA" (guidance, not statute): recorded as
            # non-statutory, yet an assessment after it counts as late (stricter reading).
            # Sure: high (s. 26C(3) wording, the guide's 30-day expectation).
            assess_due = _end_of_day(_local_date(aware, tz) + timedelta(days=30), tz)
            add(r, Obligation.ASSESSMENT, assess_due, False, PDPA_GUIDE)
            notifiable = high or facts.count(r) >= p.pdpa_notifiable_count
            if not notifiable:
                exempt(r, Obligation.AUTHORITY, ExemptionReason.NOT_NOTIFIABLE)
                continue
            # s. 26D(1): 3 calendar days from when the organisation *first* assessed the breach
            # notifiable; a later re-assessment (which the store records as assessed_at) must
            # not restart them, so the store keeps the first such time (pdpa_notifiable_at).
            # Stricter reading: an earlier assessment time given later moves it earlier.
            first = facts.pdpa_notifiable_at or facts.assessed_at
            if facts.pdpa_notifiable_at and facts.assessed_at:
                first = min(facts.pdpa_notifiable_at, facts.assessed_at)
            due = None
            if first is not None:
                due = _end_of_day(_local_date(first, tz) + timedelta(days=3), tz)
            add(r, Obligation.AUTHORITY, due, True, "PDPA s. 26D(1)")
            if not high:
                exempt(r, Obligation.SUBJECTS, ExemptionReason.NOT_HIGH_RISK)
            elif why := subject_exemption(r):
                exempt(r, Obligation.SUBJECTS, why)
            else:
                # s. 26D(2): the individuals are told "on or after" notifying the PDPC, when the
                # breach results in significant harm.  Significant harm may be found only by a
                # later assessment (the breach was notifiable for its scale first): the duty to
                # tell them arises then, so their 3 days run from the assessment that FIRST
                # found significant harm, and never end before the PDPC's.  Stricter reading
                # (the Act sets no separate number of days for individuals): the same 3
                # calendar days.  Sure: medium (PDPC guide, s. 26D(1)-(2) wording).
                harm = facts.pdpa_harm_at or facts.assessed_at
                if facts.pdpa_harm_at and facts.assessed_at:
                    harm = min(facts.pdpa_harm_at, facts.assessed_at)
                subjects_due = due
                if harm is not None:
                    harm_due = _end_of_day(_local_date(harm, tz) + timedelta(days=3), tz)
                    subjects_due = harm_due if due is None else max(due, harm_due)
                add(r, Obligation.SUBJECTS, subjects_due, False, "PDPA s. 26D(2)")
        elif r is Regime.CALIFORNIA:
            # Cal. Civ. Code 1798.82 as amended by SB 446 (Stats. 2025, in force 2026-01-01):
            # residents "in the most expedient time possible and without unreasonable delay",
            # and at the latest within 30 calendar days of discovery or notification of the
            # breach (delay only for law enforcement (c) or to determine its scope); more than
            # 500 residents: a sample copy to the Attorney General within 15 calendar days of
            # notifying them (f).  Sure: high on the two numbers (FACTS.md, "Legal deadlines");
            # medium on counting (we count calendar days from the local date of discovery and
            # end at 23:59:59 Pacific time of the last day).  Until the residents are notified
            # the Attorney General's clock runs from the residents' deadline (the latest it
            # can start), then from the first resident notice.
            if facts.encrypted:
                exempt(r, Obligation.SUBJECTS, ExemptionReason.ENCRYPTED)
                continue
            residents_due = _end_of_day(_local_date(aware, tz) + timedelta(days=30), tz)
            add(r, Obligation.SUBJECTS, residents_due, True, "Cal. Civ. Code 1798.82(a) (SB 446)")
            if facts.count(r) > p.california_ag_count:
                sent = facts.subjects_notified_at.get(r)
                start = _local_date(sent, tz) if sent else _local_date(residents_due, tz)
                ag_due = _end_of_day(start + timedelta(days=15), tz)
                add(r, Obligation.ATTORNEY_GENERAL, ag_due, True, "Cal. Civ. Code 1798.82(f) (SB 446)")
        elif r is Regime.APPI:
            # APPI Art. 26(1) with Enforcement Rules Art. 7: reportable when (i) sensitive
            # personal data (要配慮個人情報: health) or (ii) data whose misuse may cause
            # financial loss (financial data, login credentials) is involved, whatever the
            # number or assessed risk; (iii) an unlawful purpose; (iv) more than 1,000 persons.
            # We also treat a high assessed risk as reportable (stricter).  Sure: high.
            reportable = (
                high
                or facts.unlawful_purpose
                or facts.count(r) > p.appi_reportable_count
                or bool(facts.categories & APPI_ALWAYS_REPORTABLE)
            )
            if facts.encrypted and not facts.unlawful_purpose:
                exempt(r, Obligation.AUTHORITY, ExemptionReason.ENCRYPTED)
                continue
            if not reportable:
                exempt(r, Obligation.AUTHORITY, ExemptionReason.NOT_NOTIFIABLE)
                continue
            day0 = _local_date(aware, tz)
            prelim = _end_of_day(day0 + timedelta(days=p.appi_preliminary_days), tz)
            final_days = 60 if facts.unlawful_purpose else 30
            add(r, Obligation.AUTHORITY, prelim, False, "APPI Art. 26(1); Rules Art. 8(1)")
            add(
                r,
                Obligation.AUTHORITY_FINAL,
                _end_of_day(day0 + timedelta(days=final_days), tz),
                True,
                "APPI Rules Art. 8(2)",
            )
            add(r, Obligation.SUBJECTS, prelim, False, "APPI Art. 26(2)")
        elif r is Regime.LGPD:
            if facts.risk is RiskLevel.LOW:
                exempt(r, Obligation.AUTHORITY, ExemptionReason.UNLIKELY_RISK)
                continue
            # ANPD Res. 15/2024: the ANPD and the subjects within 3 business days; complementary
            # information within 20 business days of the initial communication (counted from
            # the first authority notice, or from the initial deadline while none was sent).
            # ANPD Res. 2/2022 Art. 14: small processing agents (agentes de tratamento de
            # pequeno porte) get doubled deadlines, except where the incident may compromise
            # the subjects' physical or moral integrity; we cannot tell that apart from high
            # risk, so (stricter reading) high risk is never doubled.  Sure: high on 3 and 20
            # business days and the doubling, medium on the exception's reach.
            factor = 2 if facts.small_agent and not high else 1
            note = "; Res. 2/2022 Art. 14 (x2)" if factor == 2 else ""
            day0 = _local_date(aware, tz)
            due = _end_of_day(add_business_days(day0, 3 * factor, "BR"), tz)
            add(r, Obligation.AUTHORITY, due, True, f"LGPD Art. 48; ANPD Res. 15/2024 Art. 6{note}")
            add(r, Obligation.SUBJECTS, due, True, f"LGPD Art. 48; ANPD Res. 15/2024 Art. 9{note}")
            sent = facts.authority_notified_at.get(r)
            start = _local_date(sent, tz) if sent else _local_date(due, tz)
            complement = _end_of_day(add_business_days(start, 20 * factor, "BR"), tz)
            add(
                r,
                Obligation.AUTHORITY_COMPLEMENT,
                complement,
                True,
                f"ANPD Res. 15/2024 (complementary information){note}",
            )
    return DeadlinePlan(deadlines=tuple(out), exemptions=tuple(ex))


class DeadlineState(StrEnum):
    PENDING = "pending"
    DUE_SOON = "due_soon"
    MISSED = "missed"
    MET = "met"
    LATE = "late"  # done, but after the deadline


def classify(
    due_at: datetime | None, *, now: datetime, window_hours: float, met_at: datetime | None = None
) -> DeadlineState:
    """Where a deadline stands at *now*: met (late when done after it), missed, due within
    *window_hours*, or pending."""
    if met_at is not None:
        late = due_at is not None and met_at > due_at
        return DeadlineState.LATE if late else DeadlineState.MET
    if due_at is None:
        return DeadlineState.PENDING
    if now > due_at:
        return DeadlineState.MISSED
    if due_at - now <= timedelta(hours=window_hours):
        return DeadlineState.DUE_SOON
    return DeadlineState.PENDING


def is_late(deadline: Deadline, submitted_at: datetime) -> bool:
    """True when *submitted_at* is after the deadline (GDPR Art. 33(1): give reasons)."""
    return deadline.due_at is not None and submitted_at > deadline.due_at
