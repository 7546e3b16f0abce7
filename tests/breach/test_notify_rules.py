"""Issue 14, items 4-8 in the SQL store: complete notices, fallbacks, deadlines met only when
every notice exists, PDPA assessment time, California, APPI final report, LGPD complement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from compliance.breach_checks import REGIONS, IncompleteBreachError
from compliance.breach_models import BreachIncident, BreachNotice
from compliance.breach_notify import produce_notices
from compliance.breach_ops import (
    assess_breach,
    close_breach,
    report_breach,
    update_breach,
)
from compliance.breach_service import BreachSettings
from compliance.breach_store import describe
from compliance.db import transaction
from compliance.errors import InvalidTransitionError
from compliance.subjects import ensure_subject
from mpc.errors import InputError

AWARE = datetime(2026, 10, 23, 8, 0, tzinfo=UTC)
COMPLETE = dict(
    nature="Support database exposed",
    contact="Data Protection Officer, dpo@example.org",
    records=40,
    categories=["contact"],
    measures=["access_revoked"],
)


def _state(inc, regime, obligation, now=AWARE):
    (d,) = [
        d
        for d in describe(inc, now)["deadlines"]
        if (d["regime"], d["obligation"]) == (regime, obligation)
    ]
    return d


def test_notify_refuses_incomplete_incident_and_names_what_is_missing(factory, tmp_path: Path):
    out = tmp_path / "n"
    with transaction(factory) as s:
        inc = report_breach(
            s, aware_at=AWARE, regimes=["gdpr"], affected=3, high_risk=True, now=AWARE
        )
        bid = inc.id
        assert len(describe(inc)["missing"]) == 5  # records counted as missing too
    with transaction(factory) as s, pytest.raises(IncompleteBreachError) as err:
        produce_notices(s, s.get(BreachIncident, bid), output_url=str(out), now=AWARE)
    for what in ("nature", "categories", "records", "measures", "contact point"):
        assert what in str(err.value)
    with transaction(factory) as s:
        assert s.scalar(select(func.count()).select_from(BreachNotice)) == 0
        assert s.get(BreachIncident, bid).status == "assessed"
        deadlines = describe(s.get(BreachIncident, bid), AWARE)["deadlines"]
        assert all(d["state"] == "open" for d in deadlines)
    assert not out.exists()
    with transaction(factory) as s:  # completed by an update, then it goes out
        inc = s.get(BreachIncident, bid)
        update_breach(s, inc, now=AWARE, **{k: v for k, v in COMPLETE.items() if k != "records"})
        assert describe(inc)["missing"] == ["the approximate number of records (--records)"]
        update_breach(s, inc, records=7, now=AWARE)
        assert produce_notices(s, inc, output_url=str(out), now=AWARE).authority == 1


def test_placeholder_contact_is_refused_and_the_default_comes_from_settings(factory, monkeypatch):
    with transaction(factory) as s, pytest.raises(InputError, match="real contact details"):
        report_breach(s, aware_at=AWARE, regimes=["gdpr"], contact="the data protection officer")
    monkeypatch.setenv("SMT_BREACH_CONTACT", "the DPO")
    with pytest.raises(ValueError, match="real contact details"):
        BreachSettings()
    monkeypatch.setenv("SMT_BREACH_CONTACT", "DPO, +33 1 23 45 67 89")
    assert BreachSettings().breach_contact == "DPO, +33 1 23 45 67 89"
    assert REGIONS == __import__("tasks.regions").regions.REGIONS


def test_subject_without_country_or_locale_gets_a_flagged_notice_and_deadline_waits_for_all(
    factory, tmp_path: Path
):
    with transaction(factory) as s:
        ensure_subject(s, "s-unknown", now=AWARE)  # no country, locale or time zone
        inc = report_breach(
            s,
            aware_at=AWARE,
            regimes=["gdpr"],
            subject_ids=["s-fr", "s-unknown"],
            affected=5,  # three more people than the store links
            high_risk=True,
            now=AWARE,
            **COMPLETE,
        )
        res = produce_notices(s, inc, output_url=str(tmp_path), now=AWARE + timedelta(hours=1))
        assert (res.subjects, res.fallbacks, res.by_locale) == (2, 1, {"en": 1, "fr": 1})
        assert res.pending == {"gdpr": 3}
        flagged = [n for n in inc.notices if n.audience == "subject" and n.locale == "en"]
        assert flagged[0].detail == {
            "locale_fallback": True,
            "jurisdiction_fallback": True,
            "covers": ["gdpr"],
        }
        body = Path(flagged[0].url).read_text("utf-8")
        assert "What happened: Support database exposed" in body  # Art. 34(2): the nature
        assert _state(inc, "gdpr", "subjects")["state"] == "open"  # 3 not reached: not met
        assert _state(inc, "gdpr", "authority")["state"] == "met"
        update_breach(s, inc, affected=2, now=AWARE + timedelta(hours=2))
        again = produce_notices(s, inc, output_url=str(tmp_path), now=AWARE + timedelta(hours=2))
        assert again.skipped == 2 and again.pending == {}
        assert _state(inc, "gdpr", "subjects")["state"] == "met"


def test_pdpa_assessment_time_is_an_input_and_after_30_days_is_late(factory):
    with transaction(factory) as s:
        inc = report_breach(s, aware_at=AWARE, regimes=["pdpa"], affected=800, now=AWARE)
        decided = AWARE + timedelta(days=40)
        assess_breach(s, inc, likelihood=2, severity=3, assessed_at=decided, now=decided)
        d = _state(inc, "pdpa", "assessment")
        assert (d["state"], d["statutory"]) == ("late", False)
        assert "Guide on Managing and Notifying" in d["basis"]
    with transaction(factory) as s:
        inc = report_breach(s, aware_at=AWARE, regimes=["pdpa"], affected=800, now=AWARE)
        decided = datetime(2026, 10, 30, 3, tzinfo=UTC)  # 30 Oct, 11:00 in Singapore
        later = decided + timedelta(days=20)  # the command runs three weeks later
        assess_breach(s, inc, likelihood=2, severity=3, assessed_at=decided, now=later)
        assert _state(inc, "pdpa", "assessment")["state"] == "met"
        assert _state(inc, "pdpa", "authority")["due_at"] == "2026-11-02T23:59:59+08:00"
        with pytest.raises(InputError, match="in the future"):
            assess_breach(s, inc, likelihood=2, severity=3, assessed_at=later + timedelta(1), now=later)


def test_california_residents_get_the_1798_82_notice_then_the_attorney_general_a_sample(
    factory, tmp_path: Path
):
    with transaction(factory) as s:
        inc = report_breach(
            s,
            aware_at=AWARE,
            subject_ids=["s-ca"],
            affected=600,
            high_risk=True,
            now=AWARE,
            **COMPLETE,
        )
        assert inc.regimes == ["california"]
        assert {(d["obligation"], d["statutory"]) for d in describe(inc)["deadlines"]} == {
            ("subjects", True),
            ("attorney_general", True),
        }
        now = AWARE + timedelta(days=2)
        res = produce_notices(s, inc, output_url=str(tmp_path), now=now, business="Example Inc.")
        resident = next(n for n in inc.notices if n.audience == "subject")
        lines = Path(resident.url).read_text("utf-8").splitlines()
        assert lines[0] == "Notice of Data Breach" and "What Information Was Involved" in lines
        sample = next(n for n in inc.notices if n.audience == "authority")
        assert sample.detail["obligation"] == "attorney_general" and res.authority == 1
        assert _state(inc, "california", "attorney_general")["state"] == "met"
        assert _state(inc, "california", "subjects")["state"] == "open"  # 599 not reached
        # its clock now runs from the residents' notice (25 Oct), not from their deadline
        assert _state(inc, "california", "attorney_general")["due_at"].startswith("2026-11-09")


def test_appi_final_report_in_japanese_then_close(factory, tmp_path: Path):
    with transaction(factory) as s:
        inc = report_breach(
            s, aware_at=AWARE, subject_ids=["s-jp"], high_risk=True, now=AWARE, **COMPLETE
        )
        produce_notices(s, inc, output_url=str(tmp_path), now=AWARE + timedelta(days=1))
        assert _state(inc, "appi", "authority")["state"] == "met"
        with pytest.raises(InvalidTransitionError, match="appi/authority_final"):
            close_breach(s, inc, reason="done")
        with pytest.raises(IncompleteBreachError, match="cause.*prevent recurrence"):
            produce_notices(s, inc, output_url=str(tmp_path), final=True, now=AWARE)
        update_breach(s, inc, cause="phishing of a support agent", prevention="MFA for staff")
        produce_notices(
            s, inc, output_url=str(tmp_path), final=True, now=AWARE + timedelta(days=20)
        )
        final = [n for n in inc.notices if n.detail.get("obligation") == "authority_final"]
        assert [n.locale for n in final] == ["ja"]  # the PPC reads Japanese
        body = Path(final[0].url).read_text("utf-8")
        assert "確報" in body and "漏えい等の原因：phishing" in body and "再発防止策：MFA" in body
        assert _state(inc, "appi", "authority_final")["state"] == "met"
        close_breach(s, inc, reason="final report filed")
        assert inc.status == "closed"


def test_each_authority_gets_its_own_language_and_lgpd_update_is_the_complement(
    factory, tmp_path: Path
):
    with transaction(factory) as s:
        inc = report_breach(
            s,
            aware_at=AWARE,
            regimes=["gdpr", "pdpa", "appi", "lgpd"],
            affected=900,
            high_risk=True,
            assessed_at=AWARE,
            now=AWARE,
            **COMPLETE,
        )
        produce_notices(
            s, inc, output_url=str(tmp_path), authority_locale="de", now=AWARE + timedelta(hours=5)
        )
        langs = {n.regime: n.locale for n in inc.notices if n.audience == "authority"}
        assert langs == {"gdpr": "de", "pdpa": "en", "appi": "ja", "lgpd": "pt_BR"}
        pt = next(n for n in inc.notices if n.regime == "lgpd")
        assert "Comunicação à autoridade de controle" in Path(pt.url).read_text("utf-8")
        assert _state(inc, "lgpd", "authority_complement")["state"] == "open"
        produce_notices(
            s,
            inc,
            output_url=str(tmp_path),
            now=AWARE + timedelta(days=5),
            complement="The attacker's access began on 20 October.",
        )
        assert _state(inc, "lgpd", "authority_complement")["state"] == "met"


def test_small_agent_flag_doubles_lgpd_deadlines_in_the_store(factory):
    with transaction(factory) as s:
        inc = report_breach(
            s, aware_at=AWARE, regimes=["lgpd"], affected=3, small_agent=True, now=AWARE
        )
        assert describe(inc)["small_agent"] is True
        assert "Res. 2/2022 Art. 14" in _state(inc, "lgpd", "authority")["basis"]
        update_breach(s, inc, small_agent=False)
        assert "Res. 2/2022" not in _state(inc, "lgpd", "authority")["basis"]
