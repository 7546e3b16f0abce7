"""CLI (as a process) and the two Prefect flows on the real engine, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from compliance.breach_escalation import BREACH_DUE_SOON, BREACH_MISSED

ROOT = Path(__file__).resolve().parents[2]
AWARE = datetime(2026, 10, 23, 8, 0, tzinfo=UTC)


def smt(db_url: str, *args: str) -> tuple[int, dict]:
    env = {**os.environ, "SMT_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [sys.executable, "-m", "flows.cli_breach", "breach", *args, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = p.stdout.strip().splitlines()
    return p.returncode, json.loads(lines[-1]) if lines else {"stderr": p.stderr}


def test_cli_report_assess_notify_status(factory, db_url, tmp_path):
    code, out = smt(
        db_url,
        "report",
        "--aware-at",
        "2026-10-23T10:00:00+02:00",
        "--regime",
        "gdpr",
        "--affected",
        "1200",
        "--high-risk",
        "--subject",
        "s-fr",
        "--subject",
        "s-jp",
        "--category",
        "contact",
    )
    assert code == 0 and out["status"] == "assessed"
    assert {(d["regime"], d["obligation"], d["due_at"]) for d in out["deadlines"]} >= {
        ("gdpr", "authority", "2026-10-26T09:00:00+01:00")
    }
    assert {d["regime"] for d in out["deadlines"]} == {"gdpr", "appi"}  # JP subject adds APPI
    code, err = smt(db_url, "notify", out["id"], "--output", str(tmp_path / "n"))
    assert code == 1 and "--late-reasons" in err["error"]  # the real clock is past 2026-10-26
    code, done = smt(
        db_url,
        "notify",
        out["id"],
        "--output",
        str(tmp_path / "n"),
        "--late-reasons",
        "forensic analysis",
        "--authority-locale",
        "fr",
    )
    assert code == 0 and done["by_locale"] == {"fr": 1, "ja": 1} and done["status"] == "notified"
    code, st = smt(db_url, "status", out["id"])
    assert code == 0 and st["notices"] == 4  # gdpr + appi authority, two subjects
    code, bad = smt(db_url, "report", "--aware-at", "2026-10-23T10:00:00", "--regime", "gdpr")
    assert code == 2 and "give an offset" in bad["stderr"]  # argparse refuses a naive time


@pytest.fixture(scope="module")
def harness():
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_flow_end_to_end_with_escalation_and_late_marking(harness, factory, db_url, tmp_path):
    from prefect.client.orchestration import get_client  # noqa: F401

    from flows.breach_deadline_check import DeadlineCheckParams, breach_deadline_check
    from flows.breach_notification import (
        BreachFactsParams,
        BreachNotificationParams,
        RiskParams,
        breach_notification,
    )

    incident = BreachFactsParams(
        aware_at=AWARE,
        nature="Support database exposed",
        contact="dpo@example.org",
        subject_ids=["s-fr", "s-de", "s-es", "s-jp", "s-sg"],
        records=70,
        categories=["contact"],
        measures=["access_revoked"],
    )
    # dry run: incident and deadlines recorded, nothing written
    first = breach_notification(
        BreachNotificationParams(
            incident=incident, dry_run=True, database_url=db_url, now=AWARE + timedelta(hours=1)
        )
    )
    bid = first["id"]
    assert first["notified"] is None and not (tmp_path / "out").exists()
    # 6 h before the GDPR deadline, window 12 h: alert raised, nothing missed
    check = breach_deadline_check(
        DeadlineCheckParams(window_hours=12, database_url=db_url, now=AWARE + timedelta(hours=66))
    )
    assert check["missed"] == 0
    assert {(a["regime"], a["obligation"]) for a in check["alerts"]} >= {("gdpr", "authority")}
    assert BREACH_DUE_SOON.labels(regime="gdpr", obligation="authority")._value.get() == 1
    # after the deadline: marked missed
    before = BREACH_MISSED.labels(regime="gdpr", obligation="authority")._value.get()
    late = breach_deadline_check(
        DeadlineCheckParams(window_hours=12, database_url=db_url, now=AWARE + timedelta(hours=73))
    )
    assert any(a["kind"] == "missed" and a["regime"] == "gdpr" for a in late["alerts"])
    assert BREACH_MISSED.labels(regime="gdpr", obligation="authority")._value.get() == before + 1
    # assess + notify late with reasons: notices in the subjects' own locales
    done = breach_notification(
        BreachNotificationParams(
            breach_id=bid,
            risk=RiskParams(likelihood=3, severity=4),
            late_reasons="forensics",
            output_url=str(tmp_path / "out"),
            database_url=db_url,
            now=AWARE + timedelta(hours=74),
        )
    )
    assert done["notified"]["by_locale"] == {"de": 1, "es": 1, "fr": 1, "ja": 1, "zh": 1}
    texts = {
        p.name.split(".")[1]: p.read_text("utf-8")
        for p in (tmp_path / "out" / bid / "subjects").iterdir()
    }
    assert "23. Oktober 2026" in texts["de"] and "2026年10月23日" in texts["ja"]
    assert "2026年10月23日" in texts["zh"] and "s-" not in "".join(texts)

    from prefect.artifacts import Artifact

    art = Artifact.get("breach-deadlines")
    assert art is not None and bid in art.data and "dpo@example.org" not in art.data
