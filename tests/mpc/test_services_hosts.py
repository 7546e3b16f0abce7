"""The three organisations on three hosts: the data owner (the secure-inference flow, `smt infer`),
the model owner's service and the dealer's service, each in its own network namespace on a
bridge (bench/network.py), with real identities in identity directories as operators make them.

Needs root and iproute2 (CI runs as root on this machine).  A tiny random classifier keeps the
sessions short; every result is checked against plaintext.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None,
                                reason="needs root, ip and tc")  # fmt: skip

MO, DEALER = ("10.77.0.2", 7441), ("10.77.0.3", 7442)
TEXTS = ["the parcel arrived damaged", "please reset my password", "invoice 4471 is overdue",
         "my card was charged twice", "where is my refund", "cancel the subscription",
         "the app crashes on start", "change my delivery address", "how do I close my account",
         "the courier never came", "thanks for the quick help", "I was billed in the wrong currency"]  # fmt: skip


def _identity_dirs(root: Path) -> dict[str, Path]:
    """What each organisation holds after `smt identity create` and exchanging certificates."""
    from mpc import identity

    dirs = {role: root / role for role in ("data-owner", "model-owner", "dealer")}
    for role, d in dirs.items():
        identity.create(role, d)
    for role, d in dirs.items():
        for other, od in dirs.items():
            if other != role:
                shutil.copy(od / f"{other}.crt", d / f"{other}.crt")
    return dirs


def _serve(role: str, ident_dir: Path, addr, ns: str, log: Path, model: Path | None = None) -> subprocess.Popen:
    cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "flows.cli", "serve", role, "--identity-dir", str(ident_dir),
           "--listen", f"{addr[0]}:{addr[1]}", "--drain-timeout", "30"]  # fmt: skip
    if model is not None:
        cmd += ["--model", str(model), "--model-name", "tiny"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(log, "ab"), start_new_session=True)  # noqa: SIM115
    line = proc.stdout.readline()  # the ready line: it listens
    assert line, f"{role} service did not start: {log.read_text()[-2000:]}"
    return proc


def _infer(tmp: Path, ident_dir: Path, *, run_id: str, wait: bool = True) -> subprocess.Popen:
    csv = tmp / "batch.csv"
    pd.DataFrame({"record_id": [f"r-{i:03d}" for i in range(len(TEXTS))],
                  "subject_id": [f"s-{i:03d}" for i in range(len(TEXTS))], "text": TEXTS,
                  "region": ["europe"] * len(TEXTS)}).to_csv(csv, index=False)  # fmt: skip
    env = {**os.environ, "SMT_MODEL_OWNER_ENDPOINT": f"{MO[0]}:{MO[1]}", "SMT_DEALER_ENDPOINT": f"{DEALER[0]}:{DEALER[1]}",
           "SMT_IDENTITY_DIR": str(ident_dir), "SMT_DATABASE_URL": f"sqlite:///{tmp / 'compliance.db'}",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip
    cmd = ["ip", "netns", "exec", "smt-0", sys.executable, "-m", "flows.cli", "infer", "--input", str(csv),
           "--output", str(tmp / "out"), "--model", "tiny", "--shard-size", "2", "--max-length", "16",
           "--run-id", run_id, "--dask-workers", "1", "--json"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    if wait:
        proc.out, proc.err = proc.communicate(timeout=900)  # type: ignore[attr-defined]
    return proc


def _check_results(tmp: Path, run_id: str, model_dir: Path) -> None:
    from mpc.session import plaintext_forward

    manifest = json.loads((tmp / "out" / run_id / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    res = pd.read_parquet(tmp / "out" / run_id / "results.parquet")
    assert sorted(res["record_id"]) == [f"r-{i:03d}" for i in range(len(TEXTS))]  # each once, none lost
    got = np.stack(res.sort_values("record_id")["scores"].to_list())
    ref = plaintext_forward(model_dir, TEXTS, max_length=16).numpy()
    assert np.abs(got - ref).max() < 1e-2


@pytest.fixture
def hosts():
    import network

    with network.namespaces("1gbit") as opts:
        yield opts


def _stop(*procs):
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def test_flow_as_data_owner_against_services_on_other_hosts(hosts, tmp_path, tiny_classifier_dir):
    dirs = _identity_dirs(tmp_path / "ids")
    dealer = _serve("dealer", dirs["dealer"], DEALER, "smt-2", tmp_path / "dealer.log")
    mo = _serve("model-owner", dirs["model-owner"], MO, "smt-1", tmp_path / "mo.log", tiny_classifier_dir)
    try:
        proc = _infer(tmp_path, dirs["data-owner"], run_id="hosts-1")
        assert proc.returncode == 0, proc.err[-3000:]
        _check_results(tmp_path, "hosts-1", tiny_classifier_dir)
        # one model session served every shard: start-up and weight sharing paid once
        assert (tmp_path / "mo.log").read_text().count("opened") == 1
    finally:
        _stop(mo, dealer)


def test_model_owner_restarted_mid_batch_loses_and_duplicates_nothing(hosts, tmp_path, tiny_classifier_dir):
    dirs = _identity_dirs(tmp_path / "ids")
    dealer = _serve("dealer", dirs["dealer"], DEALER, "smt-2", tmp_path / "dealer.log")
    mo = _serve("model-owner", dirs["model-owner"], MO, "smt-1", tmp_path / "mo.log", tiny_classifier_dir)
    try:
        proc = _infer(tmp_path, dirs["data-owner"], run_id="restart-1", wait=False)
        shards = tmp_path / "out" / "restart-1" / "_work" / "shards"
        deadline = time.monotonic() + 600
        while not list(shards.glob("*.parquet")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        done_before = len(list(shards.glob("*.parquet")))
        assert proc.poll() is None and 1 <= done_before < len(TEXTS) // 2, "the batch must be mid-way"
        os.killpg(mo.pid, signal.SIGKILL)  # a crash: no drain
        mo.wait()
        time.sleep(1.0)
        mo = _serve("model-owner", dirs["model-owner"], MO, "smt-1", tmp_path / "mo2.log", tiny_classifier_dir)
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]
        _check_results(tmp_path, "restart-1", tiny_classifier_dir)
        assert "opened" in (tmp_path / "mo2.log").read_text()  # the rest ran against the new service
    finally:
        _stop(mo, dealer)


def test_unknown_data_owner_is_refused_by_the_services(hosts, tmp_path, tiny_classifier_dir):
    """A data owner whose certificate the services were never given, on its own host: refused at
    the first service it asks, with the endpoint named; no session starts anywhere.  (The data
    owner's side runs as a short script: the flow path is the test above.)"""
    from mpc import identity

    dirs = _identity_dirs(tmp_path / "ids")
    stranger = tmp_path / "stranger"
    identity.create("data-owner", stranger)  # a key the services were never given
    for role in ("model-owner", "dealer"):
        shutil.copy(dirs[role] / f"{role}.crt", stranger / f"{role}.crt")
    dealer = _serve("dealer", dirs["dealer"], DEALER, "smt-2", tmp_path / "dealer.log")
    mo = _serve("model-owner", dirs["model-owner"], MO, "smt-1", tmp_path / "mo.log", tiny_classifier_dir)
    script = ("import sys\nfrom mpc import client\n"
              f"svc = client.Services.from_identity_dir(model_owner='{MO[0]}:{MO[1]}', dealer='{DEALER[0]}:{DEALER[1]}', "
              f"identity_dir='{stranger}')\n"
              "try:\n    client.ModelSession(svc, model='tiny', connect_timeout=20).infer(['hello'], max_length=16)\n"
              "except Exception as err:\n    print(type(err).__name__, err)\n    sys.exit(1)\n")  # fmt: skip
    try:
        done = subprocess.run(["ip", "netns", "exec", "smt-0", sys.executable, "-c", script], capture_output=True,
                              text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stdout.startswith("IdentityError") and f"{DEALER[0]}:{DEALER[1]}" in done.stdout
        assert "refused" in (tmp_path / "dealer.log").read_text()
        assert "opened" not in (tmp_path / "mo.log").read_text() + (tmp_path / "dealer.log").read_text()
    finally:
        _stop(mo, dealer)
