"""The secure-inference flow under Prefect's test harness: S3 in and out (moto server), the real
engine on a tiny BERT, resume of a killed run, and no record text in logs, artifacts, results or
CLI output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from flows.secure_inference import InferenceParams, secure_inference
from tasks import storage

from .conftest import MARK, write_batch

ROOT = Path(__file__).resolve().parents[2]


def _prefect_text(flow_run_id=None) -> str:
    """Every log line, artifact and task-run state message the Prefect API holds, as one text."""
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs reach the API in batches, from a background worker
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while not (logs := client.read_logs()) and time.monotonic() < deadline:
            time.sleep(0.5)
        artifacts = client.read_artifacts()
        task_runs = client.read_task_runs()
        flow_runs = client.read_flow_runs()
    parts = [log.message for log in logs]
    parts += [json.dumps(a.data, default=str) + str(a.description) for a in artifacts]
    parts += [str(tr.state.message if tr.state else "") for tr in task_runs]
    parts += [json.dumps(fr.parameters, default=str) for fr in flow_runs]
    assert logs and artifacts  # the search below would prove nothing otherwise
    return "\n".join(parts)


def _marked_rows(n: int, start: int = 0) -> list[tuple[str, str, str, str]]:
    langs = ["The parcel arrived late", "Das Paket kam zu spät", "Le colis est arrivé",
             "荷物が遅れて届きました", "El paquete llegó tarde", "包裹迟到了"]
    return [(f"r{i:03d}", f"s{i % 3}", f"{langs[i % len(langs)]} {MARK}",
             ["europe", "apac", "americas"][i % 3]) for i in range(start, start + n)]


def test_dry_run_on_s3_writes_quarantine_and_manifest_only(tmp_path, s3, prefect_harness):
    fs, bucket = s3
    local = write_batch(tmp_path / "b.csv", _marked_rows(3) + [("bad", "s", "", "mars")])
    fs.put(local, f"{bucket}/in/b.csv")
    summary = secure_inference(params=InferenceParams(
        input_url=f"s3://{bucket}/in/b.csv", output_url=f"s3://{bucket}/out", run_id="dry",
        shard_size=2, dry_run=True))
    assert summary["status"] == "dry_run"
    assert (summary["records_in"], summary["records_quarantined"]) == (4, 1)
    so = storage.s3_options(fs.client_kwargs["endpoint_url"])
    manifest = storage.read_json(f"s3://{bucket}/out/dry/manifest.json", storage_options=so)
    assert [s["status"] for s in manifest["shards"]] == ["not_run", "not_run"]
    assert manifest["counts"]["quarantined_by_reason"] == {"region_unknown": 1, "text_empty": 1}
    fs.invalidate_cache()
    assert not fs.exists(f"{bucket}/out/dry/results.parquet")
    assert MARK not in _prefect_text()


def test_end_to_end_s3_tiny_model_then_idempotent(tmp_path, s3, tiny_model, prefect_harness):
    fs, bucket = s3
    so = storage.s3_options(fs.client_kwargs["endpoint_url"])
    rows = _marked_rows(4) + [("r000", "dup", "duplicate id", "europe")]
    fs.put(write_batch(tmp_path / "b.csv", rows), f"{bucket}/in/b.csv")
    params = InferenceParams(input_url=f"s3://{bucket}/in/b.csv",
                             output_url=f"s3://{bucket}/out", model=str(tiny_model),
                             run_id="e2e", shard_size=2, max_length=16)
    summary = secure_inference(params=params)
    # r000 appears twice: both copies are quarantined
    assert (summary["records_in"], summary["records_ok"], summary["records_quarantined"],
            summary["records_excluded"]) == (5, 3, 2, 0)
    assert summary["rounds"] > 0 and summary["bytes"] > 0
    results = storage.read_parquet(summary["results"], storage_options=so)
    assert sorted(results.column("record_id").to_pylist()) == ["r001", "r002", "r003"]
    assert set(results.column_names) >= {"record_id", "subject_id", "region", "model",
                                         "embedding"}
    emb = np.array(results.column("embedding").to_pylist(), dtype=np.float32)
    assert emb.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=2e-2)
    manifest = storage.read_json(summary["manifest"], storage_options=so)
    assert manifest["status"] == "completed"
    assert [s["status"] for s in manifest["shards"]] == ["computed", "computed"]
    fs.invalidate_cache()
    assert not fs.exists(f"{bucket}/out/e2e/_work")  # shard inputs (record text) are gone
    raw = b"".join(fs.cat(p) for p in fs.find(f"{bucket}/out"))
    assert MARK.encode() not in raw

    again = secure_inference(params=params)  # same run id: nothing recomputed or rewritten
    assert again == summary
    assert MARK not in _prefect_text()


def _cli(args: list[str], env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flows.cli_infer", "infer", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **kw)


def test_cli_killed_during_second_shard_resumes(tmp_path, store, tiny_model, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    url = write_batch(tmp_path / "b.csv", _marked_rows(4))
    out = tmp_path / "out"
    args = ["--input", url, "--output", str(out), "--model", str(tiny_model), "--shard-size",
            "2", "--max-length", "16", "--run-id", "resume", "--dask-workers", "1", "--json"]
    shards = out / "resume" / "_work" / "shards"
    proc = _cli(args, env)
    deadline = time.monotonic() + 400
    while not list(shards.glob("shard-00000-*.parquet")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "first shard never finished"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # during the second shard
    first_out, first_err = proc.communicate()
    assert not (out / "resume" / "results.parquet").exists()
    first = next(shards.glob("shard-00000-*.parquet"))
    mtime = first.stat().st_mtime_ns

    proc = _cli(args, env)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert (summary["records_in"], summary["records_ok"]) == (4, 4)
    manifest = json.loads(Path(summary["manifest"]).read_text())
    assert [s["status"] for s in manifest["shards"]] == ["skipped", "computed"]
    assert first.stat().st_mtime_ns == mtime if first.exists() else True
    ids = pq.read_table(summary["results"]).column("record_id").to_pylist()
    assert sorted(ids) == ["r000", "r001", "r002", "r003"]
    for text in (first_out, first_err, stdout, stderr):
        assert MARK not in text


@pytest.mark.parametrize("body, needle", [(b"", "is empty"),
                                          (b"record_id,text\n1,x\n", "lacks required")])
def test_cli_unusable_input_exits_2(tmp_path, store, body, needle, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    bad = tmp_path / "bad.csv"
    bad.write_bytes(body)
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(ROOT)}
    proc = _cli(["--input", str(bad), "--output", str(tmp_path / "o"), "--json"], env)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, stderr[-2000:]
    last = json.loads(stdout.strip().splitlines()[-1])
    assert last["status"] == "unusable" and needle in last["error"]


def test_minilm_small_sample_via_cli(tmp_path, store, prefect_harness):
    """The main job's command (`make run`) on the 9-record sample through real MiniLM (the
    300-record sample takes minutes: `make run` and bench/inference_overhead.py run it)."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(ROOT)}
    proc = _cli(["--input", "data/sample_small.csv", "--output", str(tmp_path / "o"), "--json"],
                env)
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert (summary["records_in"], summary["records_ok"], summary["records_quarantined"]) \
        == (9, 8, 1)
    table = pq.read_table(summary["results"])
    emb = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    assert emb.shape == (8, 384)
    assert set(table.column("model").to_pylist()) and summary["seconds"] > 0
