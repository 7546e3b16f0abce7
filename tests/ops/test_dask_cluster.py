"""The inference flow on a real Dask distributed cluster: `dask scheduler` and a `dask worker`
as separate processes on loopback, reached through `smt infer --dask-address`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .test_stack import ROOT, SMT, tiny_model  # noqa: F401 - fixture

BIN = Path(sys.executable).parent


@pytest.fixture
def cluster(tmp_path):
    sched_file = tmp_path / "scheduler.json"
    common = {"cwd": ROOT, "start_new_session": True, "stdout": subprocess.DEVNULL,
              "stderr": open(tmp_path / "dask.log", "wb")}
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                               "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
                              **common)]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nthreads", "1",
                                       "--no-dashboard", "--host", "127.0.0.1"], **common))
        yield address
    finally:
        for p in reversed(procs):
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_infer_runs_shards_on_the_dask_cluster(tmp_path, cluster, tiny_model):  # noqa: F811
    from distributed import Client

    batch = tmp_path / "b.csv"
    batch.write_text("record_id,subject_id,text,region\nr1,s1,The parcel arrived late,europe\n"
                     "r2,s2,Le colis est arrivé,europe\nr3,s3,包裹迟到了,apac\n",
                     encoding="utf-8")
    env = {**os.environ, "SMT_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_HOME": str(tmp_path / "ph"),
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([SMT, "infer", "--input", str(batch), "--output", str(tmp_path / "out"),
                           "--model", str(tiny_model), "--max-length", "16", "--shard-size", "2",
                           "--run-id", "dask", "--dask-address", cluster, "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["records_ok"] == 3
    results = pq.read_table(tmp_path / "out" / "dask" / "results.parquet").to_pandas()
    assert sorted(results["record_id"]) == ["r1", "r2", "r3"]
    with Client(cluster, timeout=30) as client:  # the shards ran on this cluster
        prefixes = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    assert any("run-shard" in p or "run_shard" in p for p in prefixes), prefixes
