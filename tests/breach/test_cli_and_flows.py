"""CLI (as a process) and the two Prefect flows on the real engine, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from compliance.breach_escalation import BREACH_DUE_SOON, BREACH_MISSED
from compliance.breach_models import BreachIncident

ROOT = Path(__file__).resolve().parents[2]
AWARE = datetime(2026, 10, 23, 8, 0, tzinfo=UTC)


def _start(db_url: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "SMT_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}
    env.pop("SMT_BREACH_CONTACT", None)
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli_breach", "breach", *args, "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(p: subprocess.Popen) -> tuple[int, dict, str]:
    stdout, stderr = p.communicate(timeout=120)
    lines = stdout.strip().splitlines()
    return p.returncode, json.loads(lines[-1]) if lines else {"stderr": stderr}, stderr


def smt(db_url: str, *args: str) -> tuple[int, dict]:
    code, out, _ = _result(_start(db_url, *args))
    return code, out


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
        "--records",
        "5000",
        "--measure",
        "access_revoked",
        "--nature",
        "Support database exposed",
        "--contact",
        "DPO, dpo@example.org",
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
    assert code == 2 and "give an offset" in bad["error"]  # argparse refuses a naive time


BAD_INPUTS = {  # issue 14 item 13: each refused with one line, nothing stored
    "locale": (["--locale", "xx"], 2, "not supported"),
    "huge": (["--affected", "1" + "0" * 30], 2, "between 0 and"),
    "huge records": (["--records", "99999999999999999999"], 2, "between 0 and"),
    "negative": (["--affected", "-5"], 2, "between 0 and"),
    "future": (["--aware-at", "2999-01-01T00:00:00+00:00"], 2, "in the future"),
    "blank id": (["--subject", "  "], 2, "blank"),
    "multi-line id": (["--subject", "s-fr\nrm -rf"], 2, "line break"),
    "region": (["--regions", "mars"], 2, "unknown region"),
    "regime": (["--regime", "hipaa"], 2, "unknown regime"),
    "placeholder contact": (["--contact", "the data protection officer"], 1, "real contact"),
    # review items 5 and 6: an input never dropped, no traceback, bounded text
    "assessed without risk": (["--assessed-at", "2026-10-24T10:00:00+02:00"], 1, "smt breach assess"),
    "year 1": (["--aware-at", "0001-01-01T00:00:00+01:00"], 2, "out of range"),
    "year 1900": (["--aware-at", "1900-01-01T00:00:00+00:00"], 2, "years ago"),
    "old occurrence": (["--occurred-at", "1999-01-01T00:00:00+00:00"], 2, "years ago"),
    "long nature": (["--nature", "x" * 4001], 2, "at most 4,000"),
    "control in nature": (["--nature", "a\x1b[2Jb"], 2, "control character"),
    "range without start": (["--occurred-until", "2026-10-22T10:00:00+02:00"], 1, "its start"),
}


def test_cli_bad_input_one_line_error_json_last_and_nothing_stored(factory, db_url):
    good = ["report", "--aware-at", "2026-10-23T10:00:00+02:00", "--regime", "gdpr"]
    runs = {name: _start(db_url, *good, *extra) for name, (extra, _, _) in BAD_INPUTS.items()}
    runs["status filter"] = _start(db_url, "list", "--status", "bogus")
    runs["blank breach id"] = _start(db_url, "status", "")
    expected = {**BAD_INPUTS, "status filter": ([], 2, "unknown status"), "blank breach id": ([], 2, "blank")}
    for name, p in runs.items():
        code, out, stderr = _result(p)
        _, want_code, fragment = expected[name]
        assert code == want_code, (name, stderr)
        assert fragment in out["error"] and "\n" not in out["error"], name
        assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, name
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(BreachIncident)) == 0
    code, listed = smt(db_url, "list", "--status", "reported")
    assert code == 0 and listed == {"incidents": []}


@pytest.fixture(scope="module")
def harness():
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_flow_end_to_end_with_escalation_and_late_marking(harness, factory, db_url, tmp_path):
    from prefect.client.orchestration import get_client

    from compliance.breach_ops import report_breach
    from compliance.db import transaction
    from flows.breach_deadline_check import DeadlineCheckParams, breach_deadline_check
    from flows.breach_notification import (
        BreachNotificationParams,
        RiskParams,
        breach_notification,
    )

    subject_ids = ["s-fr", "s-de", "s-es", "s-jp", "s-sg"]
    with transaction(factory) as s:  # as `smt breach report` does: subjects stay in the store
        bid = report_breach(
            s,
            aware_at=AWARE,
            nature="Support database exposed",
            contact="dpo@example.org",
            subject_ids=subject_ids,
            records=70,
            categories=["contact"],
            measures=["access_revoked"],
            now=AWARE + timedelta(minutes=30),
        ).id
    # dry run: incident and deadlines recorded, nothing written
    first = breach_notification(
        BreachNotificationParams(
            breach_id=bid, dry_run=True, database_url=db_url, now=AWARE + timedelta(hours=1)
        )
    )
    assert first["id"] == bid
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
    state = breach_notification(
        BreachNotificationParams(
            breach_id=bid,
            risk=RiskParams(likelihood=3, severity=4),
            late_reasons="forensics",
            output_url=str(tmp_path / "out"),
            database_url=db_url,
            now=AWARE + timedelta(hours=74),
        ),
        return_state=True,
    )
    done = state.result()
    # review item 7: no subject id in Prefect's database (flow parameters, task inputs, logs)
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    stored = json.dumps(run.parameters, default=str) + json.dumps(
        [t.model_dump(mode="json") for t in tasks] + [lg.message for lg in logs], default=str
    )
    assert bid in stored and tasks and logs
    assert not any(sid in stored for sid in subject_ids)
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
