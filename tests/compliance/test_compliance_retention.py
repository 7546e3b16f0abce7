"""Retention cleanup: dry run, idempotence, per-regime policies, audit pruning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from compliance_helpers import write_run
from sqlalchemy import select

from compliance import audit, retention
from compliance.db import transaction
from compliance.errors import ComplianceError
from compliance.models import AuditEntry, InferenceRun

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def runs(factory, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    write_run(factory, out, "fresh", ["a"], started_at=NOW - timedelta(days=5), quarantined=["a"])
    write_run(factory, out, "month", ["a"], started_at=NOW - timedelta(days=45), quarantined=["b"])
    write_run(factory, out, "old", ["a"], started_at=NOW - timedelta(days=400), quarantined=["c"],
              region="americas")
    return out


def _run(factory, dry_run: bool, now: datetime = NOW) -> dict:
    with transaction(factory) as s:
        return retention.run(s, dry_run=dry_run, now=now).as_json()["deleted"]


def test_dry_run_reports_and_deletes_nothing(factory, runs):
    counts = _run(factory, dry_run=True)
    assert counts == {"inputs": 0, "results": 1, "quarantine": 2, "exports": 0, "audit": 0}
    assert all((runs / r / f).exists() for r in ("fresh", "month", "old")
               for f in ("results.parquet", "quarantine.parquet"))


def test_cleanup_deletes_expired_files_once(factory, runs):
    assert _run(factory, dry_run=False) == {"inputs": 0, "results": 1, "quarantine": 2, "exports": 0, "audit": 0}
    assert not (runs / "old" / "results.parquet").exists()
    assert not (runs / "month" / "quarantine.parquet").exists()
    assert (runs / "month" / "results.parquet").exists()
    assert (runs / "fresh" / "quarantine.parquet").exists()
    assert _run(factory, dry_run=False) == dict.fromkeys(retention.DEFAULT_DAYS, 0)
    with factory() as s:
        old = s.get(InferenceRun, "old")
        assert old.results_deleted_at == NOW and old.quarantine_deleted_at == NOW
        actions = s.execute(select(AuditEntry.action)).scalars().all()
        assert actions.count("retention.run") == 2
        assert audit.verify(s).ok


def test_policy_per_regime_overrides_default(factory, runs):
    with transaction(factory) as s:
        retention.set_policy(s, "results", 30, regime="gdpr")
        assert retention.policy_days(s, "results", "gdpr") == 30
        assert retention.policy_days(s, "results", "ccpa") == 365
        retention.set_policy(s, "results", 3, regime="*")
        assert retention.policy_days(s, "results", "pdpa") == 3
        assert retention.policy_days(s, "results", "gdpr") == 30
    # month (europe: gdpr 30 < 45 days) and old (americas: "*" 3); fresh (europe, 5 days) stays
    assert _run(factory, dry_run=True)["results"] == 2


def test_bad_policy_refused(factory):
    with transaction(factory) as s:
        with pytest.raises(ComplianceError, match="category"):
            retention.set_policy(s, "emails", 10)
        with pytest.raises(ComplianceError, match="at least"):
            retention.set_policy(s, "results", 0)


def test_audit_entries_older_than_six_years_are_pruned(factory):
    with transaction(factory) as s:
        for days in (2500, 2300, 10):
            audit.append(s, action="x", object_type="t", object_id="-", actor="t",
                         now=NOW - timedelta(days=days))
    assert _run(factory, dry_run=True)["audit"] == 2
    assert _run(factory, dry_run=False)["audit"] == 2
    with factory() as s:
        report = audit.verify(s)
        assert report.ok and report.entries == 2  # the recent one + the retention entry


def test_metrics_count_overdue_requests_without_personal_labels(factory):
    from prometheus_client import REGISTRY

    from compliance import metrics, requests

    with transaction(factory) as s:
        requests.submit(s, subject_id="late-subject", rtype="know", regime="ccpa",
                        received_at=NOW - timedelta(days=60), now=NOW)
        requests.submit(s, subject_id="on-time", rtype="access", regime="gdpr",
                        received_at=NOW - timedelta(days=3), now=NOW)
    with factory() as s:
        counts = metrics.refresh_overdue(s, now=NOW)
    assert counts == {("ccpa", "respond"): 1, ("ccpa", "confirm_receipt"): 1}
    assert REGISTRY.get_sample_value(
        "smt_dsr_overdue_requests", {"regime": "ccpa", "obligation": "respond"}
    ) == 1
    exposition = __import__("prometheus_client").generate_latest().decode()
    assert "late-subject" not in exposition and "on-time" not in exposition
    assert 'smt_dsr_requests_total{regime="ccpa",status="received",type="know"}' in exposition


def test_exports_deleted_thirty_days_after_the_request_closed(factory, tmp_path):
    from compliance import service
    from compliance.requests import submit

    with transaction(factory) as s:
        rid = submit(s, subject_id="x", rtype="access", regime="gdpr").id
    result = service.execute(factory, rid, export_dir=str(tmp_path / "exports"), worker="w")
    export = Path(result["export"])
    assert export.exists()
    assert _run(factory, dry_run=False, now=datetime.now(UTC) + timedelta(days=29))["exports"] == 0
    later = datetime.now(UTC) + timedelta(days=31)
    assert _run(factory, dry_run=True, now=later)["exports"] == 1 and export.exists()
    assert _run(factory, dry_run=False, now=later)["exports"] == 1 and not export.exists()
    assert _run(factory, dry_run=False, now=later)["exports"] == 0
