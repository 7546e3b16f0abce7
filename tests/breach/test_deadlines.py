"""Deadline engine: elapsed hours across DST, calendar days, business days with holidays."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from compliance.breach_deadlines import (
    PDPA_GUIDE,
    BreachFacts,
    DeadlineState,
    ExemptionReason,
    Obligation,
    Regime,
    RiskLevel,
    add_business_days,
    assess_risk,
    classify,
    compute_deadlines,
    is_late,
    parse_regime,
    regimes_for_jurisdictions,
)
from mpc.errors import InputError

PARIS = ZoneInfo("Europe/Paris")


def facts(**kw):
    base = dict(
        aware_at=datetime(2026, 10, 23, 10, 0, tzinfo=PARIS),
        regimes=frozenset(),
        affected=10,
        risk=RiskLevel.HIGH,
    )
    base.update(kw)
    return BreachFacts(**base)


def by(plan, regime, obligation):
    (d,) = [d for d in plan.deadlines if d.regime is regime and d.obligation is obligation]
    return d


def test_gdpr_72_elapsed_hours_across_the_october_dst_change():
    # Friday 23 Oct 2026 10:00 CEST (UTC+2); clocks go back on Sunday 25 Oct.
    plan = compute_deadlines(facts(regimes=frozenset({Regime.GDPR})))
    d = by(plan, Regime.GDPR, Obligation.AUTHORITY)
    assert d.statutory
    assert d.due_at == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)
    local = d.due_at.astimezone(PARIS)
    assert (local.day, local.hour, local.utcoffset().total_seconds()) == (26, 9, 3600)
    assert (d.due_at - datetime(2026, 10, 23, 8, 0, tzinfo=UTC)).total_seconds() == 72 * 3600


def test_gdpr_subjects_and_exemptions():
    plan = compute_deadlines(facts(regimes=frozenset({Regime.GDPR})))
    assert by(plan, Regime.GDPR, Obligation.SUBJECTS).statutory is False
    enc = compute_deadlines(facts(regimes=frozenset({Regime.GDPR}), encrypted=True))
    assert [e.reason for e in enc.exemptions] == [ExemptionReason.ENCRYPTED]
    assert {d.obligation for d in enc.deadlines} == {Obligation.AUTHORITY}
    removed = compute_deadlines(facts(regimes=frozenset({Regime.GDPR}), risk_removed=True))
    assert [e.reason for e in removed.exemptions] == [ExemptionReason.RISK_REMOVED]
    public = compute_deadlines(
        facts(regimes=frozenset({Regime.GDPR}), disproportionate_effort=True)
    )
    assert by(public, Regime.GDPR, Obligation.PUBLIC_NOTICE).basis == "GDPR Art. 34(3)(c)"
    low = compute_deadlines(facts(regimes=frozenset({Regime.GDPR}), risk=RiskLevel.LOW))
    assert low.deadlines == ()
    assert {e.reason for e in low.exemptions} == {
        ExemptionReason.UNLIKELY_RISK,
        ExemptionReason.NOT_HIGH_RISK,
    }


def test_late_authority_notification_is_detected():
    d = by(
        compute_deadlines(facts(regimes=frozenset({Regime.GDPR}))),
        Regime.GDPR,
        Obligation.AUTHORITY,
    )
    assert not is_late(d, datetime(2026, 10, 26, 8, 59, tzinfo=PARIS))
    assert is_late(d, datetime(2026, 10, 26, 9, 0, 1, tzinfo=PARIS))


def test_pdpa_assessment_then_three_calendar_days_over_a_weekend():
    sg = ZoneInfo("Asia/Singapore")
    aware = datetime(2026, 3, 2, 9, 0, tzinfo=sg)
    pending = compute_deadlines(
        facts(aware_at=aware, regimes=frozenset({Regime.PDPA}), risk=RiskLevel.MEDIUM, affected=500)
    )
    assert by(pending, Regime.PDPA, Obligation.ASSESSMENT).due_local == datetime(
        2026, 4, 1, 23, 59, 59, tzinfo=sg
    )
    assert by(pending, Regime.PDPA, Obligation.AUTHORITY).due_at is None
    decided = datetime(2026, 3, 6, 17, 0, tzinfo=sg)  # a Friday: calendar days run on
    plan = compute_deadlines(
        facts(
            aware_at=aware,
            regimes=frozenset({Regime.PDPA}),
            risk=RiskLevel.MEDIUM,
            affected=500,
            assessed_at=decided,
        )
    )
    assert by(plan, Regime.PDPA, Obligation.AUTHORITY).due_local == datetime(
        2026, 3, 9, 23, 59, 59, tzinfo=sg
    )
    assert [e.reason for e in plan.exemptions] == [ExemptionReason.NOT_HIGH_RISK]
    small = compute_deadlines(
        facts(aware_at=aware, regimes=frozenset({Regime.PDPA}), risk=RiskLevel.MEDIUM, affected=499)
    )
    assert [e.reason for e in small.exemptions] == [ExemptionReason.NOT_NOTIFIABLE]


def test_california_attorney_general_only_above_500_residents():
    r = frozenset({Regime.CALIFORNIA})
    assert {d.obligation for d in compute_deadlines(facts(regimes=r, affected=500)).deadlines} == {
        Obligation.SUBJECTS
    }
    big = compute_deadlines(
        facts(regimes=r, affected=10, affected_by_regime={Regime.CALIFORNIA: 501})
    )
    assert {d.obligation for d in big.deadlines} == {
        Obligation.SUBJECTS,
        Obligation.ATTORNEY_GENERAL,
    }


def test_appi_preliminary_and_final_30_or_60_days():
    tokyo = ZoneInfo("Asia/Tokyo")
    aware = datetime(2026, 12, 29, 23, 30, tzinfo=UTC)  # already 30 Dec in Tokyo
    plan = compute_deadlines(facts(aware_at=aware, regimes=frozenset({Regime.APPI})))
    assert by(plan, Regime.APPI, Obligation.AUTHORITY).due_local == datetime(
        2027, 1, 2, 23, 59, 59, tzinfo=tokyo
    )
    assert by(plan, Regime.APPI, Obligation.AUTHORITY_FINAL).due_local.date().isoformat() == (
        "2027-01-29"
    )
    bad = compute_deadlines(
        facts(aware_at=aware, regimes=frozenset({Regime.APPI}), unlawful_purpose=True)
    )
    assert by(bad, Regime.APPI, Obligation.AUTHORITY_FINAL).due_local.date().isoformat() == (
        "2027-02-28"
    )


def test_lgpd_three_business_days_skip_weekend_and_christmas():
    sp = ZoneInfo("America/Sao_Paulo")
    aware = datetime(2026, 12, 24, 15, 0, tzinfo=sp)  # Thursday; Friday 25 Dec is a holiday
    plan = compute_deadlines(facts(aware_at=aware, regimes=frozenset({Regime.LGPD})))
    assert by(plan, Regime.LGPD, Obligation.AUTHORITY).due_local == datetime(
        2026, 12, 30, 23, 59, 59, tzinfo=sp
    )
    # 20 Nov (Black Consciousness Day) is a national holiday since 2024.
    assert add_business_days(datetime(2026, 11, 18).date(), 3, "BR").isoformat() == "2026-11-24"


def test_risk_matrix_and_parsing():
    assert assess_risk(1, 3) is RiskLevel.LOW
    assert assess_risk(2, 3) is RiskLevel.MEDIUM
    assert assess_risk(2, 4) is RiskLevel.HIGH
    with pytest.raises(InputError, match="between 1 and 4"):
        assess_risk(0, 2)
    assert parse_regime("CCPA") is Regime.CALIFORNIA
    with pytest.raises(InputError, match="use one of"):
        parse_regime("hipaa")
    assert regimes_for_jurisdictions(["fr", "US-CA", "JP", "US-NY"]) == {
        Regime.GDPR,
        Regime.CALIFORNIA,
        Regime.APPI,
    }
    with pytest.raises(InputError, match="time zone"):
        facts(aware_at=datetime(2026, 1, 1))


def test_classify():
    due = datetime(2026, 10, 26, 8, 0, tzinfo=UTC)
    at = lambda h: datetime(2026, 10, 26, h, 0, tzinfo=UTC)  # noqa: E731
    assert classify(due, now=at(1), window_hours=6) is DeadlineState.PENDING
    assert classify(due, now=at(3), window_hours=6) is DeadlineState.DUE_SOON
    assert classify(due, now=at(9), window_hours=6) is DeadlineState.MISSED
    assert classify(due, now=at(9), window_hours=6, met_at=at(7)) is DeadlineState.MET
    assert classify(None, now=at(9), window_hours=6) is DeadlineState.PENDING


def test_pdpa_assessment_target_is_pdpc_guidance_not_statute():
    plan = compute_deadlines(facts(regimes=frozenset({Regime.PDPA})))
    d = by(plan, Regime.PDPA, Obligation.ASSESSMENT)
    assert d.statutory is False and d.basis == PDPA_GUIDE and "26C" not in d.basis
    assert by(plan, Regime.PDPA, Obligation.AUTHORITY).basis == "PDPA s. 26D(1)"


def test_california_sb446_30_days_for_residents_and_15_for_the_attorney_general():
    la = ZoneInfo("America/Los_Angeles")
    aware = datetime(2026, 1, 5, 9, 0, tzinfo=la)
    r = frozenset({Regime.CALIFORNIA})
    plan = compute_deadlines(facts(aware_at=aware, regimes=r, affected=501))
    residents = by(plan, Regime.CALIFORNIA, Obligation.SUBJECTS)
    ag = by(plan, Regime.CALIFORNIA, Obligation.ATTORNEY_GENERAL)
    assert residents.statutory and ag.statutory
    assert residents.due_local == datetime(2026, 2, 4, 23, 59, 59, tzinfo=la)  # 30 days
    assert ag.due_local == datetime(2026, 2, 19, 23, 59, 59, tzinfo=la)  # 15 after that, at most
    sent = compute_deadlines(
        facts(
            aware_at=aware,
            regimes=r,
            affected=501,
            subjects_notified_at={Regime.CALIFORNIA: datetime(2026, 1, 12, 18, 0, tzinfo=UTC)},
        )
    )
    assert by(sent, Regime.CALIFORNIA, Obligation.ATTORNEY_GENERAL).due_local == datetime(
        2026, 1, 27, 23, 59, 59, tzinfo=la
    )  # 15 days from notifying the residents on 12 Jan


def test_lgpd_complement_in_20_business_days_and_small_agents_get_double():
    sp = ZoneInfo("America/Sao_Paulo")
    aware = datetime(2026, 3, 2, 10, 0, tzinfo=sp)  # Monday, no holiday in March
    r = frozenset({Regime.LGPD})
    plan = compute_deadlines(facts(aware_at=aware, regimes=r, risk=RiskLevel.MEDIUM))
    assert by(plan, Regime.LGPD, Obligation.AUTHORITY).due_local.date().isoformat() == (
        "2026-03-05"
    )
    comp = by(plan, Regime.LGPD, Obligation.AUTHORITY_COMPLEMENT)
    assert comp.statutory and comp.due_local.date().isoformat() == "2026-04-02"  # 20 from 5 Mar
    sent = compute_deadlines(
        facts(
            aware_at=aware,
            regimes=r,
            risk=RiskLevel.MEDIUM,
            authority_notified_at={Regime.LGPD: datetime(2026, 3, 3, 15, 0, tzinfo=UTC)},
        )
    )
    assert by(sent, Regime.LGPD, Obligation.AUTHORITY_COMPLEMENT).due_local.date().isoformat() == (
        "2026-03-31"
    )  # from the actual communication on 3 Mar
    small = compute_deadlines(
        facts(aware_at=aware, regimes=r, risk=RiskLevel.MEDIUM, small_agent=True)
    )
    first = by(small, Regime.LGPD, Obligation.AUTHORITY)
    assert first.due_local.date().isoformat() == "2026-03-10"  # 6 business days
    assert "Res. 2/2022 Art. 14" in first.basis
    assert by(small, Regime.LGPD, Obligation.AUTHORITY_COMPLEMENT).due_local.date().isoformat() == (
        "2026-05-08"  # 40 business days from 10 Mar (Good Friday 3 Apr, 21 Apr, 1 May off)
    )
    high = compute_deadlines(facts(aware_at=aware, regimes=r, small_agent=True))  # high risk
    assert by(high, Regime.LGPD, Obligation.AUTHORITY).due_local.date().isoformat() == (
        "2026-03-05"
    )  # stricter reading: no doubling when the risk is high


def test_done_after_the_deadline_is_late_not_met():
    due = datetime(2026, 10, 26, 8, 0, tzinfo=UTC)
    assert classify(due, now=due, window_hours=6, met_at=due) is DeadlineState.MET
    late = datetime(2026, 10, 26, 8, 1, tzinfo=UTC)
    assert classify(due, now=late, window_hours=6, met_at=late) is DeadlineState.LATE
