"""Breach incidents in the SQL store: transitions (exhaustive), deadlines, notices, escalation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from compliance import audit
from compliance.breach_escalation import BREACH_DUE_SOON, check_deadlines
from compliance.breach_models import BreachIncident, BreachNotice
from compliance.breach_notify import produce_notices
from compliance.breach_ops import assess_breach, report_breach
from compliance.breach_store import (
    TRANSITIONS,
    BreachEvent,
    BreachStatus,
    describe,
    transition,
)
from compliance.db import transaction
from compliance.errors import InvalidTransitionError
from compliance.models import AuditEntry, Base

AWARE = datetime(2026, 10, 23, 8, 0, tzinfo=UTC)  # Friday 10:00 in Paris


def _report(s, **kw):
    base = dict(
        aware_at=AWARE,
        nature="Support database exposed",
        contact="dpo@example.org",
        subject_ids=["s-fr", "s-de", "s-es", "s-jp", "s-sg", "s-ca"],
        records=40,
        categories=["contact", "credentials"],
        measures=["access_revoked"],
        now=AWARE + timedelta(hours=2),
    )
    base.update(kw)
    return report_breach(s, **base)


def test_regimes_follow_subjects_and_audit_holds_no_subject_ids(factory):
    with transaction(factory) as s:
        inc = _report(s)
        assert inc.regimes == ["appi", "california", "gdpr", "pdpa"]
        assert inc.status == BreachStatus.REPORTED
        assert audit.verify(s).ok
        blob = " ".join(e.details + e.object_id for e in s.scalars(select(AuditEntry)))
        assert "s-fr" not in blob and "dpo@example.org" not in blob


@pytest.mark.parametrize("status", [None, *BreachStatus])
@pytest.mark.parametrize("event", list(BreachEvent))
def test_transition_table_is_enforced_exhaustively(factory, status, event):
    with transaction(factory) as s:
        inc = _report(s, subject_ids=[], regimes=["gdpr"], affected=3)
        if status is not None:
            inc.status = status.value
        before = s.scalar(select(func.count()).select_from(AuditEntry))
        if status is None:  # a status-less incident exists only inside report_breach
            assert ((None, event) in TRANSITIONS) == (event is BreachEvent.REPORT)
            return
        allowed = (status, event) in TRANSITIONS
        if allowed:
            transition(s, inc, event, actor="t", reason="dup" if event == "close" else None)
            assert inc.status == TRANSITIONS[(status, event)]
            assert s.scalar(select(func.count()).select_from(AuditEntry)) > before
        elif not allowed:
            with pytest.raises(InvalidTransitionError):
                transition(s, inc, event, actor="t")
            assert inc.status == status.value
            assert s.scalar(select(func.count()).select_from(AuditEntry)) == before


def test_close_needs_reason_and_changes_are_whitelisted(factory):
    with transaction(factory) as s:
        inc = _report(s, subject_ids=[], regimes=["gdpr"], affected=3)
        with pytest.raises(InvalidTransitionError, match="needs a reason"):
            transition(s, inc, "close", actor="t")
        with pytest.raises(InvalidTransitionError, match="cannot change"):
            transition(s, inc, "update", actor="t", changes={"risk_level": "low"})


def test_assessment_meets_pdpa_assessment_and_starts_pdpc_clock(factory):
    with transaction(factory) as s:
        inc = _report(s, regimes=["pdpa"], subject_ids=[], affected=800)
        d = {(x["regime"], x["obligation"]): x for x in describe(inc)["deadlines"]}
        assert d[("pdpa", "authority")]["due_at"] is None
        assess_breach(s, inc, likelihood=2, severity=3, now=datetime(2026, 10, 30, 3, tzinfo=UTC))
        d = {(x["regime"], x["obligation"]): x for x in describe(inc)["deadlines"]}
        assert d[("pdpa", "assessment")]["state"] == "met"
        assert d[("pdpa", "authority")]["due_at"] == "2026-11-02T23:59:59+08:00"
        assert inc.exemptions == [
            {"regime": "pdpa", "obligation": "subjects", "reason": "not_high_risk"}
        ]


def test_notices_late_reasons_idempotence_and_escalation(factory, tmp_path: Path):
    out = tmp_path / "notices"
    with transaction(factory) as s:
        inc = _report(s)
        with pytest.raises(InvalidTransitionError, match="assess it first"):
            produce_notices(s, inc, output_url=str(out))
        assess_breach(s, inc, likelihood=3, severity=4, now=AWARE + timedelta(hours=3))
        bid = inc.id
    # escalation: 6 hours before the GDPR 72 h deadline with a 12 h window
    with transaction(factory) as s:
        alerts = check_deadlines(s, window_hours=12, now=AWARE + timedelta(hours=66))
        assert {(a.regime, a.obligation, a.kind) for a in alerts} >= {
            ("gdpr", "authority", "due_soon")
        }
        assert BREACH_DUE_SOON.labels(regime="gdpr", obligation="authority")._value.get() == 1
    late = AWARE + timedelta(hours=80)
    with transaction(factory) as s:
        alerts = check_deadlines(s, window_hours=12, now=late)
        assert ("gdpr", "authority", "missed") in {(a.regime, a.obligation, a.kind) for a in alerts}
        inc = s.get(BreachIncident, bid)
        with pytest.raises(InvalidTransitionError, match="late-reasons"):
            produce_notices(s, inc, output_url=str(out), now=late)
        res = produce_notices(
            s, inc, output_url=str(out), late_reasons="forensics", now=late, business="Example"
        )
        assert res.by_locale == {"fr": 1, "de": 1, "es": 1, "ja": 1, "zh": 1, "en": 1}
        assert inc.status == BreachStatus.NOTIFIED and inc.phase == 1
    with transaction(factory) as s:  # phase 2 (Art. 33(4)); subject notices not repeated
        inc = s.get(BreachIncident, bid)
        again = produce_notices(
            s, inc, output_url=str(out), now=late + timedelta(days=1), complement="scope confirmed"
        )
        assert (again.subjects, again.skipped, inc.phase) == (0, 6, 2)
        notices = s.scalars(select(BreachNotice).where(BreachNotice.audience == "subject")).all()
        fr = next(n for n in notices if n.locale == "fr")
        body = Path(fr.url).read_text("utf-8")
        assert "Le 23 octobre 2026 à 10:00" in body and "s-fr" not in fr.url
        authority = [n for n in inc.notices if n.audience == "authority" and n.regime == "gdpr"]
        assert [n.phase for n in authority] == [1, 2]
        assert "forensics" in Path(authority[0].url).read_text("utf-8")
        assert audit.verify(s).ok
        states = {(d["regime"], d["obligation"]): d["state"] for d in describe(inc)["deadlines"]}
        # notified at 80 h: after GDPR's 72 h and, credentials being involved (APPI Rules
        # Art. 7(ii): reportable whatever the number), after APPI's preliminary 3 days
        assert states[("gdpr", "authority")] == "late"
        assert states[("appi", "authority")] == "late"
        json.dumps(describe(inc))


def test_migrations_match_the_breach_models(factory):
    engine = factory.kw["bind"]
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diff if "breach" in str(d)]
    assert ours == []
