"""Schema, subjects, consent history and the SQL consent gate."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

import compliance
from compliance import audit
from compliance.db import migrate, transaction
from compliance.errors import ComplianceError
from compliance.gate import ConsentGate, ExclusionReason
from compliance.models import Base, Consent, Subject
from compliance.settings import ComplianceSettings
from compliance.store import SqlConsentGate
from compliance.subjects import describe_subject, ensure_subject, record_consent, set_flags

P = "secure_inference"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_migrations_match_the_models_and_rerun_cleanly(backend):
    for mod in pkgutil.iter_modules(compliance.__path__):  # every module declaring tables
        if mod.name.endswith("models"):
            importlib.import_module(f"compliance.{mod.name}")
    migrate(backend.engine)  # already at head: a no-op
    with backend.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_settings_read_smt_env(monkeypatch):
    monkeypatch.setenv("SMT_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert ComplianceSettings().database_url == "postgresql+psycopg://u@h/db"
    monkeypatch.delenv("SMT_DATABASE_URL")
    assert ComplianceSettings().database_url.startswith("sqlite:///")


def test_datetimes_come_back_aware_and_in_utc(factory):
    paris = datetime(2026, 7, 1, 12, 0, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Paris")
    )
    with transaction(factory) as s:
        record_consent(s, "s1", P, given=True, source="web", now=paris)
    with factory() as s:
        c = s.execute(select(Consent)).scalar_one()
        assert c.recorded_at == paris and c.recorded_at.tzinfo is not None
        assert c.recorded_at.utcoffset() == timedelta(0)


def test_consent_history_is_kept_and_latest_counts(factory):
    with transaction(factory) as s:
        record_consent(s, "s1", P, given=True, source="web", now=T0)
        record_consent(s, "s1", P, given=False, source="email", now=T0 + timedelta(days=1))
        record_consent(s, "s1", "analytics", given=True, source="web", now=T0)
    with factory() as s:
        info = describe_subject(s, "s1")
    assert info["consents"][P] == {
        "given": False,
        "source": "email",
        "at": (T0 + timedelta(days=1)).isoformat(),
    }
    assert [h["given"] for h in info["history"] if h["purpose"] == P] == [True, False]


def test_audit_entries_hold_no_subject_id(factory):
    with transaction(factory) as s:
        record_consent(s, "alice-7", P, given=True, source="web", now=T0)
    with factory() as s:
        rows = s.execute(select(audit.AuditEntry)).scalars().all()
        subject = s.get(Subject, "alice-7")
        assert rows and all("alice-7" not in (r.details + r.object_id) for r in rows)
        assert {r.subject_ref for r in rows} == {audit.subject_ref(subject)}


@pytest.mark.parametrize("policy", ["default", "strict"])
def test_gate_decisions(factory, policy):
    with transaction(factory) as s:
        record_consent(s, "given", P, given=True, source="web", now=T0)
        record_consent(s, "withdrawn", P, given=True, source="web", now=T0)
        record_consent(s, "withdrawn", P, given=False, source="web", now=T0)
        record_consent(s, "other-purpose", "analytics", given=True, source="web", now=T0)
        for sid, flag in (("restricted", "restricted"), ("objected", "objected"), ("opted", "opted_out")):
            subject = ensure_subject(s, sid, now=T0)
            record_consent(s, sid, P, given=True, source="web", now=T0)
            set_flags(s, subject, actor="t", now=T0, reason="test", **{flag: True})
    gate: ConsentGate = SqlConsentGate(factory)
    ids = ["given", "withdrawn", "other-purpose", "restricted", "objected", "opted", "unknown"]
    decisions = gate.decide(ids + ["given"], purpose=P, policy=policy)
    assert set(decisions) == set(ids)
    reasons = {sid: d.reason for sid, d in decisions.items()}
    assert {sid: d.allowed for sid, d in decisions.items()} == {
        sid: reasons[sid] is None for sid in ids
    }
    no_consent = ExclusionReason.NO_CONSENT if policy == "strict" else None
    assert reasons == {
        "given": None,
        "withdrawn": ExclusionReason.CONSENT_WITHDRAWN,
        "other-purpose": no_consent,
        "restricted": ExclusionReason.RESTRICTED,
        "objected": ExclusionReason.OBJECTED,
        "opted": ExclusionReason.OBJECTED,
        "unknown": no_consent,
    }


def test_gate_handles_many_ids(factory):
    with transaction(factory) as s:
        record_consent(s, "s-1200", P, given=False, source="web", now=T0)
    decisions = SqlConsentGate(factory).decide(
        [f"s-{i}" for i in range(1500)], purpose=P, policy="default"
    )
    assert len(decisions) == 1500
    assert [sid for sid, d in decisions.items() if not d.allowed] == ["s-1200"]


def test_bad_inputs_refused_with_guidance(factory):
    with transaction(factory) as s:
        with pytest.raises(ComplianceError, match="IANA"):
            ensure_subject(s, "s1", time_zone="Mars/Olympus")
        with pytest.raises(ComplianceError, match="flags"):
            set_flags(s, ensure_subject(s, "s2"), actor="t", now=T0, reason="r", banned=True)
    with pytest.raises(ComplianceError, match="policy"):
        SqlConsentGate(factory).decide(["x"], purpose=P, policy="lenient")  # type: ignore[arg-type]
