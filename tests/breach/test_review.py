"""Review of issue 14's breach work: each confirmed defect, caught through the real CLI or the
real SQLite store (PDPA clock from the first notifiable assessment, missed stays missed;
per-regime phase lines and a real LGPD complement; California 1798.82(d)(2) contents; English
fallback; assessed-at never dropped; time and text bounds; keyed notice pseudonyms)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from compliance import breach_service
from compliance.breach_checks import IncompleteBreachError
from compliance.breach_deadlines import RiskLevel
from compliance.breach_escalation import check_deadlines
from compliance.breach_models import BreachIncident
from compliance.breach_notices import NoticeContent, render_authority_notice
from compliance.breach_notify import _pseudonym, produce_notices
from compliance.breach_ops import assess_breach, close_breach, report_breach, update_breach
from compliance.breach_store import describe
from compliance.db import transaction
from compliance.errors import InvalidTransitionError
from compliance.models import AuditEntry
from compliance.subjects import ensure_subject
from tests.breach.test_cli_and_flows import smt

AWARE = datetime(2026, 10, 23, 8, 0, tzinfo=UTC)
COMPLETE = dict(
    nature="Support database exposed",
    contact="Data Protection Officer, dpo@example.org",
    records=40,
    categories=["contact"],
    measures=["access_revoked"],
)


def _row(out: dict, regime: str, obligation: str) -> dict:
    (d,) = [
        d for d in out["deadlines"] if (d["regime"], d["obligation"]) == (regime, obligation)
    ]
    return d


# 1. PDPA s. 26D(1): a re-assessment never restarts the 3 days nor erases a miss ------------


def test_pdpa_reassessment_keeps_the_missed_deadline_and_the_late_notice_gives_reasons(
    factory, db_url, tmp_path
):
    code, out = smt(
        db_url,
        *("report", "--aware-at", "2026-10-01T10:00:00+08:00", "--regime", "pdpa"),
        *("--regime", "gdpr", "--affected", "600", "--records", "600", "--nature", "n"),
        *("--contact", "a@b.sg", "--category", "contact", "--measure", "access_revoked"),
        *("--high-risk", "--assessed-at", "2026-10-05T10:00:00+08:00"),
    )
    assert code == 0, out
    bid = out["id"]
    assert _row(out, "pdpa", "authority")["due_at"] == "2026-10-08T23:59:59+08:00"
    alerts = breach_service.check(
        factory, window_hours=24, actor="t", now=datetime(2026, 10, 9, tzinfo=UTC)
    )
    assert ("pdpa", "authority", "missed") in {
        (a["regime"], a["obligation"], a["kind"]) for a in alerts
    }
    code, out = smt(
        db_url,
        *("assess", bid, "--likelihood", "4", "--severity", "4"),
        *("--assessed-at", "2026-11-30T10:00:00+08:00"),
    )
    assert code == 0, out
    pdpa = _row(out, "pdpa", "authority")
    assert (pdpa["due_at"], pdpa["state"]) == ("2026-10-08T23:59:59+08:00", "missed")
    code, err = smt(db_url, "notify", bid, "--output", str(tmp_path / "n"))
    assert code == 1 and "pdpa/authority" in err["error"] and "--late-reasons" in err["error"]
    code, done = smt(
        db_url, "notify", bid, "--output", str(tmp_path / "n"), "--late-reasons", "forensics"
    )
    assert code == 0, done
    code, st = smt(db_url, "status", bid)
    assert _row(st, "pdpa", "authority")["state"] == "late"  # never "met"
    body = next((tmp_path / "n" / bid / "authority").glob("pdpa-*")).read_text("utf-8")
    assert "Reasons for the delay: forensics" in body and "8, 2026" in body


def test_reassessing_low_risk_or_encrypted_keeps_missed_deadlines_not_owed(factory):
    with transaction(factory) as s:
        inc = report_breach(
            s, aware_at=AWARE, regimes=["gdpr", "appi"], affected=3, high_risk=True, now=AWARE,
            **COMPLETE,
        )
        bid = inc.id
    with transaction(factory) as s:
        check_deadlines(s, window_hours=1, now=AWARE + timedelta(days=4))
    with transaction(factory) as s:
        inc = s.get(BreachIncident, bid)
        when = AWARE + timedelta(days=5)
        assess_breach(s, inc, likelihood=1, severity=1, encrypted=True, now=when)
        out = describe(inc)
        for regime in ("gdpr", "appi"):  # GDPR: low risk; APPI: encrypted; both were missed
            row = _row(out, regime, "authority")
            assert (row["state"], row["owed"]) == ("missed", False), regime
        entry = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "breach.assess").order_by(AuditEntry.seq)
        ).all()[-1]
        kept = json.loads(entry.details)["kept_not_owed"]
        assert {"gdpr/authority", "appi/authority"} <= set(kept)
        with pytest.raises(InvalidTransitionError, match="nothing to send"):
            produce_notices(s, inc, output_url="/nonexistent", now=when)  # nothing owed
        close_breach(s, inc, reason="not notifiable after all", now=when)  # not blocking
        assert _row(describe(inc), "gdpr", "authority")["state"] == "missed"


# 2. Each regime's own phase line; the APPI final report; a real LGPD complement ----------


def _content(**kw) -> NoticeContent:
    base = dict(
        reference="BR-1", nature="n", aware_at=AWARE, affected_subjects=2, affected_records=2,
        categories=("contact",), measures=("access_revoked",), risk=RiskLevel.HIGH,
        contact="dpo@example.org",
    )
    return NoticeContent(**{**base, **kw})


def test_updates_cite_their_own_regime_and_the_appi_final_report_is_a_final_report():
    for regime, locale in (("pdpa", "en"), ("appi", "ja"), ("lgpd", "pt_BR"), ("gdpr", "en")):
        body = render_authority_notice(
            _content(phase=2, regime=regime), locale=locale, tz="UTC"
        ).body
        assert ("33(4)" in body) is (regime == "gdpr"), regime
    pt = render_authority_notice(_content(phase=2, regime="lgpd"), locale="pt_BR", tz="UTC").body
    assert "nos termos da Resolução CD/ANPD nº 15/2024" in pt  # cited the Brazilian way
    final = render_authority_notice(
        _content(phase=2, regime="appi", final=True, basis="APPI Rules Art. 8(2)"),
        locale="en",
        tz="UTC",
    ).body
    assert "final report completes our preliminary report" in final and "update" not in final


def test_lgpd_complement_needs_something_new(factory, tmp_path: Path):
    out = str(tmp_path)
    with transaction(factory) as s:
        inc = report_breach(
            s, aware_at=AWARE, regimes=["lgpd"], affected=3, high_risk=True, now=AWARE, **COMPLETE
        )
        produce_notices(s, inc, output_url=out, now=AWARE + timedelta(hours=2))
        with pytest.raises(InvalidTransitionError, match="--complement"):  # a mere copy
            produce_notices(s, inc, output_url=out, now=AWARE + timedelta(days=2))
        update_breach(s, inc, records=40, now=AWARE + timedelta(days=3))  # same value: nothing
        with pytest.raises(InvalidTransitionError, match="smt breach update"):
            produce_notices(s, inc, output_url=out, now=AWARE + timedelta(days=3))
        assert _row(describe(inc, AWARE), "lgpd", "authority_complement")["state"] == "open"
        update_breach(s, inc, records=55, now=AWARE + timedelta(days=4))  # a changed fact
        produce_notices(s, inc, output_url=out, now=AWARE + timedelta(days=5))
        assert _row(describe(inc), "lgpd", "authority_complement")["state"] == "met"
        last = [n for n in inc.notices if n.audience == "authority"][-1]
        body = Path(last.url).read_text("utf-8")
        assert "informações complementares" in body and "55" in body and "33(4)" not in body


# 3. California 1798.82(d)(2): business, date kind, law enforcement, agencies, offer ------


def test_california_notice_has_1798_82_d_2_contents(factory, db_url, tmp_path: Path, monkeypatch):
    code, out = smt(
        db_url,
        *("report", "--aware-at", "2026-10-23T10:00:00-07:00", "--subject", "s-ca"),
        *("--affected", "1", "--records", "1", "--high-risk", "--contact", "help@ex.com"),
        *("--category", "identity", "--measure", "police_informed"),
        *("--nature", "A laptop was stolen.\n\nIt held a customer file."),
        *("--occurred-at", "2026-10-10T00:00:00-07:00"),
        *("--occurred-until", "2026-10-12T00:00:00-07:00"),
    )
    assert code == 0, out
    bid = out["id"]
    with transaction(factory) as s:
        inc = s.get(BreachIncident, bid)
        assert inc.nature == "A laptop was stolen.\n\nIt held a customer file."
        with pytest.raises(IncompleteBreachError) as err:
            produce_notices(s, inc, output_url=str(tmp_path), now=AWARE + timedelta(days=1))
        for what in ("SMT_BREACH_BUSINESS_NAME", "--law-enforcement-delay", "--identity-services"):
            assert what in str(err.value)
    code, _ = smt(
        db_url, "update", bid, "--no-law-enforcement-delay",
        "--identity-services", "Enrol at https://id.example.com with code ABC123.",
    )
    assert code == 0
    monkeypatch.setenv("SMT_BREACH_BUSINESS_NAME", "Example Retail Inc.")
    code, done = smt(db_url, "notify", bid, "--output", str(tmp_path), "--late-reasons", "x")
    assert code == 0, done
    body = next((tmp_path / bid / "subjects").iterdir()).read_text("utf-8")
    for fragment in (
        "This notice is sent by Example Retail Inc.",  # (A)
        "between October 10, 2026 and October 12, 2026",  # (C) date range
        "was not delayed as a result of a law enforcement investigation",  # (D)
        "Equifax", "Experian", "TransUnion", "1-800-685-1111",  # (F)
        "for 12 months at no cost to you", "code ABC123",  # (G)
    ):
        assert fragment in body, fragment


# 4. A subject with no country or locale: English, flagged --------------------------------


def test_subject_without_country_gets_english_not_the_first_regimes_language(
    factory, tmp_path: Path
):
    with transaction(factory) as s:
        ensure_subject(s, "s-nowhere", now=AWARE)
        inc = report_breach(
            s, aware_at=AWARE, regimes=["appi", "lgpd"], subject_ids=["s-nowhere"], affected=1,
            high_risk=True, now=AWARE, **COMPLETE,
        )
        res = produce_notices(s, inc, output_url=str(tmp_path), now=AWARE + timedelta(hours=1))
        (notice,) = [n for n in inc.notices if n.audience == "subject"]
        assert (notice.locale, res.by_locale) == ("en", {"en": 1})
        # owed under every regime of the incident: counted for each (covers)
        assert notice.detail == {
            "locale_fallback": True,
            "jurisdiction_fallback": True,
            "covers": ["appi", "lgpd"],
        }


# 5, 6. Inputs are never dropped, crash or pass unbounded: see BAD_INPUTS in
# test_cli_and_flows.py (assessed-at without risk, year 1 and 1900, 4,001 characters,
# control characters); here the library path, which the flows use.


def test_store_refuses_assessed_at_without_risk_and_out_of_range_times(factory):
    with transaction(factory) as s:
        with pytest.raises(Exception, match="--assessed-at dates"):
            report_breach(s, aware_at=AWARE, regimes=["pdpa"], assessed_at=AWARE, now=AWARE)
        with pytest.raises(Exception, match="years ago"):
            report_breach(s, aware_at=datetime(1900, 1, 1, tzinfo=UTC), regimes=["gdpr"], now=AWARE)
        with pytest.raises(Exception, match="at most 4,000"):
            report_breach(s, aware_at=AWARE, regimes=["gdpr"], nature="x" * 4001, now=AWARE)
        with pytest.raises(Exception, match="control character"):
            report_breach(s, aware_at=AWARE, regimes=["gdpr"], nature="a\x1b[2Jb", now=AWARE)


# 8. Notice file names: keyed, not guessable from subject ids -----------------------------


def test_notice_pseudonym_is_keyed_by_the_audit_key(monkeypatch):
    unkeyed = hashlib.sha256(b"BR-1\x00s-fr").hexdigest()
    monkeypatch.setenv("SMT_AUDIT_KEY", "11" * 32)
    one = _pseudonym("BR-1", "s-fr")
    monkeypatch.setenv("SMT_AUDIT_KEY", "22" * 32)
    two = _pseudonym("BR-1", "s-fr")
    assert one != two and not unkeyed.startswith(one) and not unkeyed.startswith(two)
    assert _pseudonym("BR-1", "s-fr") == two and _pseudonym("BR-2", "s-fr") != two
