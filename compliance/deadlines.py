"""Legal deadlines of data-subject requests, computed in the subject's time zone.

Rules (shared/FACTS.md, "Legal deadlines"):

- GDPR Art. 12(3): answer within 1 month of receipt, extendable by 2 further months when the
  subject is told within the first month.  Periods follow Regulation 1182/71 (which governs
  periods in EU acts): a month ends on the same date of the next month, or that month's last day
  when it has no such date; a period ending on a Saturday, Sunday or public holiday (of the
  subject's country, when known) ends on the next working day.
- CCPA regulations 7021: confirm receipt within 10 business days *after* receipt (7021(a): the
  day of receipt is not counted); answer within 45 calendar days, extendable once by 45 more
  with notice.  7021(b): "The 45-day period will begin on the day that the business receives
  the request" and allows "a maximum total of 90 calendar days from the day the request is
  received": we read "begin on the day" as counting the day of receipt as day 1 (the stricter
  reading: due at the end of receipt + 44 days, extended receipt + 89), not as day 0.  7026 (opt-out of sale/sharing): comply
  within 15 business days; no confirmation step.  Business days skip weekends and the
  holidays of ``holidays.US(subdiv="CA")`` (a maintained library, not a hand-written list).
  Calendar-day deadlines are not moved off weekends (the earlier date is the safe one).
- Singapore PDPA access/correction: 30 calendar days.  The PDPA has no fixed extension (the
  organisation tells the individual when it will answer); ``extended_respond`` refuses it.

GDPR periods start from the day of receipt in the *controller's* time zone (the request reaches
the controller; ``ComplianceSettings.controller_time_zone``), not the subject's.

Other day counts start the day after receipt.  A deadline is the end (23:59:59) of its local day,
returned in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
from dateutil.relativedelta import relativedelta

from compliance.errors import ComplianceError
from compliance.models import Regime, RequestType

ALLOWED_TYPES: dict[Regime, frozenset[RequestType]] = {
    Regime.GDPR: frozenset(
        {
            RequestType.ACCESS,
            RequestType.PORTABILITY,
            RequestType.ERASURE,
            RequestType.RECTIFICATION,
            RequestType.RESTRICTION,
            RequestType.OBJECTION,
        }
    ),
    Regime.CCPA: frozenset(
        {RequestType.KNOW, RequestType.DELETE, RequestType.CORRECT, RequestType.OPT_OUT}
    ),
    Regime.PDPA: frozenset({RequestType.ACCESS, RequestType.RECTIFICATION}),
}

RESPOND = "respond"
CONFIRM_RECEIPT = "confirm_receipt"


def check_type(regime: Regime, rtype: RequestType) -> None:
    if rtype not in ALLOWED_TYPES[regime]:
        allowed = ", ".join(sorted(ALLOWED_TYPES[regime]))
        raise ComplianceError(f"{regime} has no request type {rtype!r}; use one of: {allowed}")


def _calendar(regime: Regime, country: str | None, subdivision: str | None, years: range):
    if regime is Regime.CCPA:
        return holidays.country_holidays("US", subdiv="CA", years=years)
    if country:
        try:
            return holidays.country_holidays(country, subdiv=subdivision, years=years)
        except NotImplementedError as exc:
            raise ComplianceError(
                f"no holiday calendar for country {country!r}; store an ISO 3166 alpha-2 code"
            ) from exc
    return {}


def _is_business_day(day: date, calendar) -> bool:  # type: ignore[no-untyped-def]
    return day.weekday() < 5 and day not in calendar


def add_business_days(start: date, n: int, calendar) -> date:  # type: ignore[no-untyped-def]
    """The ``n``-th business day after ``start`` (``start`` itself is not counted)."""
    day, counted = start, 0
    while counted < n:
        day += timedelta(days=1)
        if _is_business_day(day, calendar):
            counted += 1
    return day


def _next_working_day(day: date, calendar) -> date:  # type: ignore[no-untyped-def]
    while not _is_business_day(day, calendar):
        day += timedelta(days=1)
    return day


def end_of_local_day(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=tz).astimezone(UTC)


def _local_date(received_at: datetime, tz: ZoneInfo) -> date:
    if received_at.tzinfo is None:
        raise ComplianceError("received_at must be timezone-aware (e.g. 2026-11-25T10:00:00Z)")
    return received_at.astimezone(tz).date()


def _respond_day(
    regime: Regime, rtype: RequestType, start: date, calendar, *, extended: bool
) -> date:  # type: ignore[no-untyped-def]
    if regime is Regime.GDPR:
        return _next_working_day(start + relativedelta(months=3 if extended else 1), calendar)
    if regime is Regime.CCPA:
        if rtype is RequestType.OPT_OUT:
            if extended:
                raise ComplianceError("CCPA opt-out requests have no extension (regs 7026)")
            return add_business_days(start, 15, calendar)
        return start + timedelta(days=(90 if extended else 45) - 1)  # day of receipt is day 1
    if extended:
        raise ComplianceError(
            "the PDPA sets no fixed extension: tell the individual in writing when you will"
            " answer, and record that date as a note on the request instead"
        )
    return start + timedelta(days=30)


def compute(
    regime: Regime,
    rtype: RequestType,
    received_at: datetime,
    time_zone: str,
    *,
    country: str | None = None,
    subdivision: str | None = None,
    extended: bool = False,
) -> dict[str, datetime]:
    """Obligation -> due time (UTC) for a request received at ``received_at``."""
    check_type(regime, rtype)
    tz = ZoneInfo(time_zone)
    start = _local_date(received_at, tz)
    calendar = _calendar(regime, country, subdivision, range(start.year, start.year + 2))
    due = {
        RESPOND: end_of_local_day(
            _respond_day(regime, rtype, start, calendar, extended=extended), tz
        )
    }
    if regime is Regime.CCPA and rtype is not RequestType.OPT_OUT:
        due[CONFIRM_RECEIPT] = end_of_local_day(add_business_days(start, 10, calendar), tz)
    return due
