"""Deadlines with frozen clocks, in the subject's time zone: month ends, daylight-saving
changes, weekends and public holidays (Thanksgiving, Christmas, New Year)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from compliance import deadlines
from compliance.errors import ComplianceError
from compliance.models import Regime, RequestType

PARIS, LA, SG = ZoneInfo("Europe/Paris"), ZoneInfo("America/Los_Angeles"), ZoneInfo("Asia/Singapore")


def local_end(tz: ZoneInfo, y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 23, 59, 59, tzinfo=tz).astimezone(UTC)


def gdpr(received: datetime, **kw) -> dict[str, datetime]:
    return deadlines.compute(Regime.GDPR, RequestType.ACCESS, received, "Europe/Paris", **kw)


def ccpa(rtype: RequestType, received: datetime, **kw) -> dict[str, datetime]:
    return deadlines.compute(Regime.CCPA, rtype, received, "America/Los_Angeles", **kw)


def test_gdpr_one_month_across_a_dst_change():
    # 10 March (CET, UTC+1) -> 10 April (CEST, UTC+2): the deadline is local, not UTC + 31 days
    due = gdpr(datetime(2026, 3, 10, 9, 0, tzinfo=PARIS), country="FR")
    assert due == {"respond": local_end(PARIS, 2026, 4, 10)}
    assert due["respond"] == datetime(2026, 4, 10, 21, 59, 59, tzinfo=UTC)


def test_gdpr_month_end_without_that_day_and_a_sunday():
    # received 31 Jan 2027 -> 28 Feb 2027 (no 31 Feb) is a Sunday -> Monday 1 March
    due = gdpr(datetime(2027, 1, 31, 12, 0, tzinfo=PARIS), country="FR")
    assert due["respond"] == local_end(PARIS, 2027, 3, 1)


def test_gdpr_month_end_on_a_weekday():
    due = gdpr(datetime(2026, 8, 31, 12, 0, tzinfo=PARIS), country="FR")  # -> Wed 30 Sep 2026
    assert due["respond"] == local_end(PARIS, 2026, 9, 30)


def test_gdpr_deadline_on_a_public_holiday_moves_to_next_working_day():
    # 14 June 2027 + 1 month = Wednesday 14 July 2027, Fête nationale in France -> 15 July
    due = gdpr(datetime(2027, 6, 14, 10, 0, tzinfo=PARIS), country="FR")
    assert due["respond"] == local_end(PARIS, 2027, 7, 15)
    # without a known country only weekends move it
    assert gdpr(datetime(2027, 6, 14, 10, 0, tzinfo=PARIS))["respond"] == local_end(
        PARIS, 2027, 7, 14
    )


def test_gdpr_receipt_date_is_the_subjects_local_date():
    # 23:30 UTC on 31 Jan is already 1 Feb in Paris: one month later is 1 March, not 28 Feb
    due = gdpr(datetime(2027, 1, 31, 23, 30, tzinfo=UTC), country="FR")
    assert due["respond"] == local_end(PARIS, 2027, 3, 1)


def test_gdpr_extension_adds_two_months():
    due = gdpr(datetime(2026, 3, 10, 9, 0, tzinfo=PARIS), country="FR", extended=True)
    assert due["respond"] == local_end(PARIS, 2026, 6, 10)


def test_ccpa_received_the_day_before_thanksgiving():
    # Wed 25 Nov 2026; Thu 26 (Thanksgiving) and Fri 27 (CA holiday) are not business days:
    # 30 Nov, 1-4 Dec, 7-11 Dec -> the 10th business day is Fri 11 Dec
    due = ccpa(RequestType.KNOW, datetime(2026, 11, 25, 10, 0, tzinfo=LA))
    assert due["confirm_receipt"] == local_end(LA, 2026, 12, 11)
    # 45 calendar days counted from the day of receipt as day 1 (7021(b)): 25 Nov + 44
    assert due["respond"] == local_end(LA, 2027, 1, 8)
    assert due["respond"] == datetime(2027, 1, 9, 7, 59, 59, tzinfo=UTC)  # PST, UTC-8


def test_ccpa_across_christmas_and_new_year():
    # Thu 17 Dec 2026: 18, 21, 22, 23, 24 (not a holiday), [25 holiday], 28, 29, 30, 31,
    # [1 Jan holiday], Mon 4 Jan 2027 is the 10th
    due = ccpa(RequestType.DELETE, datetime(2026, 12, 17, 16, 0, tzinfo=LA))
    assert due["confirm_receipt"] == local_end(LA, 2027, 1, 4)
    assert due["respond"] == local_end(LA, 2027, 1, 30)


def test_ccpa_receipt_date_in_los_angeles_not_utc():
    # 03:00 UTC on Thursday 26 Nov is still Wednesday 25 Nov in Los Angeles
    due = ccpa(RequestType.KNOW, datetime(2026, 11, 26, 3, 0, tzinfo=UTC))
    assert due["confirm_receipt"] == local_end(LA, 2026, 12, 11)


def test_ccpa_across_dst_end():
    # received Fri 30 Oct 2026 (PDT); day 45 is 13 Dec (PST): local end of day either way
    due = ccpa(RequestType.CORRECT, datetime(2026, 10, 30, 9, 0, tzinfo=LA))
    assert due["respond"] == datetime(2026, 12, 14, 7, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize("extended,last_day", [(False, 44), (True, 89)])
def test_ccpa_period_begins_on_the_day_of_receipt(extended, last_day):
    # 7021(b): "the 45-day period will begin on the day that the business receives the
    # request"; a maximum of 90 days "from the day the request is received".  Received at
    # 23:59 on 1 Jul: 1 Jul is day 1, so day 45 is 14 Aug (1 Jul + 44) and day 90 is 28 Sep.
    received = datetime(2026, 7, 1, 23, 59, tzinfo=LA)
    due = ccpa(RequestType.KNOW, received, extended=extended)
    expected = received.date() + timedelta(days=last_day)
    assert due["respond"] == local_end(LA, expected.year, expected.month, expected.day)
    assert expected == (date(2026, 9, 28) if extended else date(2026, 8, 14))


def test_ccpa_opt_out_fifteen_business_days_and_no_receipt_step():
    due = ccpa(RequestType.OPT_OUT, datetime(2026, 11, 25, 10, 0, tzinfo=LA))
    # 30 Nov .. 4 Dec (5), 7..11 (10), 14..18 Dec (15)
    assert due == {"respond": local_end(LA, 2026, 12, 18)}
    with pytest.raises(ComplianceError, match="no extension"):
        ccpa(RequestType.OPT_OUT, datetime(2026, 11, 25, 10, 0, tzinfo=LA), extended=True)


def test_ccpa_extension_is_ninety_days_from_receipt():
    received = datetime(2026, 11, 25, 10, 0, tzinfo=LA)
    due = ccpa(RequestType.KNOW, received, extended=True)
    assert due["respond"] == local_end(LA, 2027, 2, 22)  # day 90, receipt day being day 1
    assert due["respond"].astimezone(LA).date() - received.date() == timedelta(days=89)


def test_pdpa_thirty_days_and_no_fixed_extension():
    received = datetime(2026, 12, 20, 10, 0, tzinfo=SG)
    due = deadlines.compute(Regime.PDPA, RequestType.ACCESS, received, "Asia/Singapore")
    assert due == {"respond": local_end(SG, 2027, 1, 19)}
    with pytest.raises(ComplianceError, match="PDPA"):
        deadlines.compute(
            Regime.PDPA, RequestType.ACCESS, received, "Asia/Singapore", extended=True
        )


@pytest.mark.parametrize(
    ("regime", "rtype"),
    [(Regime.GDPR, RequestType.KNOW), (Regime.CCPA, RequestType.ACCESS), (Regime.PDPA, RequestType.ERASURE)],
)
def test_request_type_must_belong_to_the_regime(regime, rtype):
    with pytest.raises(ComplianceError, match="use one of"):
        deadlines.compute(regime, rtype, datetime(2026, 1, 5, tzinfo=UTC), "UTC")


def test_naive_receipt_time_refused():
    with pytest.raises(ComplianceError, match="timezone-aware"):
        gdpr(datetime(2026, 1, 5, 10, 0))
