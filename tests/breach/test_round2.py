"""Second review of the breach work: each confirmed defect, caught through the real CLI or the
real SQLite store (subjects deadlines that can be met without falsifying the numbers; states
computed from now; APPI subject notices with the cause; each regime's own rule in refusals;
PDPA subjects clock from the first significant-harm assessment; private notice files)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from compliance.breach_checks import IncompleteBreachError
from compliance.breach_deadlines import RiskLevel
from compliance.breach_notices import NoticeContent, render_subject_notice
from compliance.breach_notify import produce_notices
from compliance.breach_ops import assess_breach, report_breach
from compliance.breach_store import describe
from compliance.db import transaction
from compliance.models import AuditEntry
from compliance.subjects import ensure_subject
from flows.cli_breach import _summary

ROOT = Path(__file__).resolve().parents[2]
AWARE = datetime(2026, 10, 23, 8, 0, tzinfo=UTC)
COMPLETE = dict(
    nature="Support database exposed",
    contact="Data Protection Officer, dpo@example.org",
    records=40,
    categories=["contact"],
    measures=["access_revoked"],
)


def _smt(db_url: str, *args: str) -> tuple[int, dict]:
    env = {
        **os.environ,
        "SMT_DATABASE_URL": db_url,
        "PYTHONPATH": str(ROOT),
        "SMT_BREACH_BUSINESS_NAME": "Example Inc.",
    }
    env.pop("SMT_BREACH_CONTACT", None)
    p = subprocess.run(
        [sys.executable, "-m", "flows.cli_breach", "breach", *args, "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    lines = p.stdout.strip().splitlines()
    return p.returncode, json.loads(lines[-1]) if lines else {"stderr": p.stderr}


def _row(out: dict, regime: str, obligation: str) -> dict:
    (d,) = [x for x in out["deadlines"] if (x["regime"], x["obligation"]) == (regime, obligation)]
    return d


def _add(factory, sid: str, country: str | None, sub: str | None = None, locale=None) -> None:
    with transaction(factory) as s:
        ensure_subject(s, sid, country=country, subdivision=sub, locale=locale, now=AWARE)


# 1, 2, 6: California, 600 residents, one linked: link more later, record the rest as notified
# by other means, then the deadline is met and the incident closes without --unmet-ok.
def test_cli_california_subjects_deadline_can_be_met_truthfully(factory, db_url, tmp_path):
    _add(factory, "s-ca2", "US", "CA")
    aware = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0).isoformat()
    code, out = _smt(
        db_url, "report", "--aware-at", aware, "--regime", "california", "--subject", "s-ca",
        "--affected", "600", "--records", "600", "--nature", "x", "--category", "identity",
        "--category", "financial", "--measure", "systems_patched", "--measure",
        "police_informed", "--contact", "DPO, dpo@example.org",
    )
    assert code == 0, out
    bid = out["id"]
    assert _smt(db_url, "assess", bid, "--likelihood", "3", "--severity", "3")[0] == 0
    code, out = _smt(
        db_url, "update", bid, "--no-law-enforcement-delay", "--identity-services", "Call 1-800-555-0100"
    )
    assert code == 0, out
    notices = tmp_path / "n"
    code, out = _smt(db_url, "notify", bid, "--output", str(notices))
    assert code == 0 and out["subjects_pending"] == {"california": 599}
    ag = list((notices / bid / "authority").iterdir())
    assert [p.name for p in ag] == ["california-attorney_general-phase1.en.txt"]
    assert out["phase"] == 1  # the JSON agrees with the file name
    for path in [notices, notices / bid, notices / bid / "subjects", *ag]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    code, out = _smt(db_url, "update", bid, "--subject", "s-ca2")  # link one more
    assert code == 0, out
    code, out = _smt(db_url, "notify", bid, "--output", str(notices))
    assert code == 0 and out["subject_notices"] == 1 and out["subjects_pending"] == {"california": 598}
    code, out = _smt(db_url, "notify", bid, "--notified-otherwise", "599", "--channel", "letter")
    assert code != 0 and "598" in out["error"]  # never more than are still owed
    code, out = _smt(
        db_url, "notify", bid, "--notified-otherwise", "598", "--channel", "postal letter"
    )
    assert code == 0 and out["notified_otherwise"] == 598 and out["subjects_pending"] == {}
    code, st = _smt(db_url, "status", bid)
    assert _row(st, "california", "subjects")["state"] == "met"
    code, out = _smt(db_url, "close", bid, "--reason", "all notified")
    assert code == 0 and out["status"] == "closed"
    with transaction(factory) as s:
        (entry,) = [
            json.loads(e.details)
            for e in s.scalars(select(AuditEntry).where(AuditEntry.object_id == bid))
            if "notified_otherwise" in json.loads(e.details)
        ]
        assert entry["channel"] == "postal letter" and entry["covers"] == ["california"]


# 1: a subject with no jurisdiction stands in for every regime; pdpa/subjects is met.
def test_fallback_notice_counts_for_every_regime_it_stands_in_for(factory, tmp_path):
    _add(factory, "s-br", "BR", locale="pt-BR")
    _add(factory, "s-cn", "CN")
    with transaction(factory) as s:
        inc = report_breach(
            s, aware_at=AWARE, regimes=["appi", "lgpd", "pdpa"],
            subject_ids=["s-jp", "s-br", "s-cn"], affected=3, high_risk=True,
            assessed_at=AWARE, now=AWARE, **COMPLETE,
        )
        res = produce_notices(s, inc, output_url=str(tmp_path), now=AWARE + timedelta(hours=1))
        assert res.pending == {}
        cn = next(n for n in inc.notices if n.detail.get("jurisdiction_fallback"))
        assert cn.detail["covers"] == ["appi", "lgpd", "pdpa"] and cn.locale == "zh"
        assert "原因" in Path(cn.url).read_text("utf-8")  # stands in for APPI: Rules Art. 10
        out = describe(inc, AWARE + timedelta(hours=1))
        assert {_row(out, r, "subjects")["state"] for r in ("appi", "lgpd", "pdpa")} == {"met"}


# 2: the state is computed from now; the summary shows the deadline in its authority's zone.
def test_state_from_now_and_summary_in_the_authority_zone(factory):
    with transaction(factory) as s:
        inc = report_breach(s, aware_at=AWARE, regimes=["appi"], high_risk=True, now=AWARE,
                            affected=5, **COMPLETE)
        assert _row(describe(inc, AWARE), "appi", "authority")["state"] == "open"
        late = describe(inc, AWARE + timedelta(days=10))
        assert _row(late, "appi", "authority")["state"] == "missed"  # not yet marked by the flow
        text = _summary(describe(inc, AWARE), "en")
    assert "Japan Standard Time" in text and "Coordinated Universal Time" not in text


# 3: APPI subject notices carry the cause (or say it is still unknown) and secondary damage.
@pytest.mark.parametrize("locale", ["en", "ja"])
def test_appi_subject_notice_states_the_cause(locale):
    base = dict(
        reference="BR-1", nature="n", aware_at=AWARE, affected_subjects=3, affected_records=3,
        categories=("contact",), measures=("access_revoked",), risk=RiskLevel.HIGH,
        contact="dpo@example.org", regime="appi", appi_subject=True,
    )
    unknown = render_subject_notice(NoticeContent(**base), locale=locale, tz="Asia/Tokyo",
                                    issued_at=AWARE).body
    known = render_subject_notice(
        NoticeContent(**base, cause="phishing", secondary_damage="spam e-mails"),
        locale=locale, tz="Asia/Tokyo", issued_at=AWARE,
    ).body
    assert "phishing" in known and "spam e-mails" in known and "phishing" not in unknown
    if locale == "en":
        assert "Cause of the breach: phishing" in known
        assert "The cause of the breach is still being investigated" in unknown
    else:
        assert "原因" in unknown and "二次被害" in known


# 4: refusals cite the incident's own regime, not GDPR.
def test_refusals_cite_the_regimes_own_rule(factory, tmp_path):
    with transaction(factory) as s:
        appi = report_breach(s, aware_at=AWARE, regimes=["appi"], high_risk=True, now=AWARE,
                             affected=5, records=5)
        with pytest.raises(IncompleteBreachError) as err:
            produce_notices(s, appi, output_url=str(tmp_path), now=AWARE)
        assert "APPI Rules Art. 8(1), 10" in str(err.value) and "GDPR" not in str(err.value)
        ca = report_breach(s, aware_at=AWARE, regimes=["california"], high_risk=True,
                           now=AWARE, affected=5, **COMPLETE)
        with pytest.raises(IncompleteBreachError) as err:
            produce_notices(s, ca, output_url=str(tmp_path), now=AWARE)  # no business name
        assert "1798.82(d)(2)" in str(err.value) and "GDPR" not in str(err.value)


# 5: PDPA subjects clock from the assessment that first found significant harm.
def test_pdpa_subjects_deadline_runs_from_first_significant_harm(factory):
    first = AWARE + timedelta(days=1)
    harm = AWARE + timedelta(days=36)  # 2026-11-28 16:00 Singapore
    with transaction(factory) as s:
        inc = report_breach(s, aware_at=AWARE, regimes=["pdpa"], affected=600, likelihood=2,
                            severity=2, assessed_at=first, now=first, **COMPLETE)
        assert _row(describe(inc, first), "pdpa", "authority")["due_at"].startswith("2026-10-27")
        assess_breach(s, inc, likelihood=4, severity=4, assessed_at=harm, now=harm)
        subjects = _row(describe(inc, harm), "pdpa", "subjects")
        assert subjects["due_at"] == "2026-12-01T23:59:59+08:00" and subjects["state"] == "open"
        later = harm + timedelta(days=4)  # a re-assessment never restarts it
        assess_breach(s, inc, likelihood=4, severity=4, assessed_at=later, now=later)
        assert _row(describe(inc, later), "pdpa", "subjects")["due_at"].startswith("2026-12-01")


# 7: citations and date-times read as each language writes them.
def test_citations_and_date_times_per_language():
    from compliance.breach_notices import render_authority_notice

    c = NoticeContent(
        reference="BR-1", nature="n", aware_at=AWARE, affected_subjects=3, affected_records=3,
        categories=("contact",), measures=("access_revoked",), risk=RiskLevel.HIGH,
        contact="dpo@example.org", basis="LGPD Art. 48", regime="lgpd",
    )
    pt = render_authority_notice(c, locale="pt_BR", tz="America/Sao_Paulo").body
    assert "nos termos do art. 48 da LGPD" in pt and "de LGPD" not in pt
    issued = render_subject_notice(c, locale="pt_BR", tz="America/Sao_Paulo", issued_at=AWARE)
    assert "de 2026 às 05:00" in issued.body
    ja = render_authority_notice(c, locale="ja", tz="Asia/Tokyo").body
    assert "本人" in ja and "データ主体" not in ja and "（日本標準時）" in ja
    ja_issued = render_subject_notice(c, locale="ja", tz="Asia/Tokyo", issued_at=AWARE).body
    assert "17:00（日本標準時）" in ja_issued and " (日本標準時)" not in ja_issued


# Round 3: APPI Rules Art. 7(i),(ii): health, financial data or credentials are reportable
# whatever the number or the assessed risk.
@pytest.mark.parametrize("category,reportable", [
    ("health", True), ("financial", True), ("credentials", True), ("contact", False),
])
def test_appi_sensitive_or_financial_data_is_always_reportable(category, reportable):
    from compliance.breach_deadlines import BreachFacts, Obligation, Regime, compute_deadlines

    plan = compute_deadlines(BreachFacts(
        aware_at=AWARE, regimes=frozenset({Regime.APPI}), affected=5, risk=RiskLevel.MEDIUM,
        categories=frozenset({category}),
    ))
    owed = {d.obligation for d in plan.deadlines}
    assert (Obligation.AUTHORITY_FINAL in owed) is reportable
    assert (Obligation.SUBJECTS in owed) is reportable


# Round 3: a California-format notice standing in for GDPR (unknown country) states the likely
# consequences (GDPR Art. 34(2) -> 33(3)(c); PDPA, LGPD Art. 48 §1 III alike).
def test_california_format_fallback_notice_states_the_consequences(factory, tmp_path):
    _add(factory, "s-none", None)
    with transaction(factory) as s:
        inc = report_breach(
            s, aware_at=AWARE, regimes=["gdpr", "california"], subject_ids=["s-none"],
            affected=1, high_risk=True, assessed_at=AWARE, now=AWARE,
            **{**COMPLETE, "law_enforcement_delay": False},
        )
        produce_notices(s, inc, output_url=str(tmp_path), now=AWARE + timedelta(hours=1),
                        late_reasons="test", business="Example Corp")
        (notice,) = [n for n in inc.notices if n.audience == "subject"]
        assert set(notice.detail["covers"]) == {"california", "gdpr"}
        text = Path(notice.url).read_text("utf-8")
    assert "What Happened" in text
    assert "identity theft, financial loss or other serious harm" in text
