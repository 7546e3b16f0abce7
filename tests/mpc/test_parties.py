"""Parties as OS processes: failures, timeouts, bad input, disagreement, provider choice."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time

import psutil
import pytest

from mpc import errors
from mpc.api import run_inference


def _session_processes(workdir) -> list[psutil.Process]:
    procs = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "mpc.party" in cmd and str(workdir) in cmd:
            procs.append(p)
    return procs


def test_killed_party_fails_the_session_naming_it_and_leaves_nothing(tmp_path):
    killed = {}

    def killer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for p in _session_processes(tmp_path):
                if "--role model-owner" in " ".join(p.cmdline()):
                    time.sleep(4)  # mid-session: parties are connected and computing
                    p.kill()
                    killed["pid"] = p.pid
                    return
            time.sleep(0.1)

    t = threading.Thread(target=killer)
    t.start()
    start = time.monotonic()
    with pytest.raises(errors.PartyFailure) as info:
        run_inference(["one text", "another text"], model="minilm", timeout=120, workdir=tmp_path)
    t.join()
    assert killed, "the model owner was never seen running"
    assert "model-owner (rank 1)" in str(info.value)
    assert "killed by signal 9" in str(info.value)
    assert info.value.party == "model-owner (rank 1)"
    assert time.monotonic() - start < 120
    assert _session_processes(tmp_path) == []


def test_timeout_stops_every_party(tmp_path):
    with pytest.raises(errors.PartyFailure) as info:
        run_inference(["a text"], model="minilm", timeout=3, workdir=tmp_path)
    assert "timed out after 3 s" in str(info.value)
    assert _session_processes(tmp_path) == []


def test_empty_text_is_rejected_with_its_index_not_its_content():
    with pytest.raises(errors.InputError) as info:
        run_inference(["secret diagnosis alpha", "   "], model="minilm", timeout=120)
    assert "record 1: empty text" in str(info.value)
    assert "data-owner" in str(info.value)
    assert "secret diagnosis" not in str(info.value)


def test_overlong_text_rejected_or_truncated_by_option():
    long_text = "word " * 100
    with pytest.raises(errors.InputError, match="record 0: 102 tokens exceed max_length 16"):
        run_inference([long_text], model="minilm", max_length=16, on_overlong="reject", timeout=120)
    res = run_inference([long_text], model="minilm", max_length=16, on_overlong="truncate", timeout=120)
    assert res.outputs.shape == (1, 384)


def test_unknown_model_directory(tmp_path):
    with pytest.raises(errors.ConfigurationError, match="neither a registered name"):
        run_inference(["x"], model=str(tmp_path / "nope"))


def test_weights_that_do_not_match_the_config(tiny_classifier_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_classifier_dir, broken)
    cfg = json.loads((broken / "config.json").read_text())
    cfg["intermediate_size"] = 256  # the saved weights have 128
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(errors.ConfigurationError) as info:
        run_inference(["x"], model=broken, timeout=120)
    assert "model-owner (rank 1)" in str(info.value)
    assert "intermediate.dense.weight" in str(info.value) and "do not match" in str(info.value)


def test_parties_that_disagree_stop_with_a_protocol_error(tiny_classifier_dir):
    with pytest.raises(errors.ProtocolError) as info:
        run_inference(["x"], model=tiny_classifier_dir, timeout=120,
                      param_overrides={"model-owner": {"max_length": 64}})  # fmt: skip
    assert "disagree" in str(info.value) and "max_length" in str(info.value)


def test_trusted_first_party_cannot_be_selected():
    proc = subprocess.run(
        [sys.executable, "-m", "mpc.party", "--role", "data-owner", "--rank", "0", "--world-size", "2",
         "--rendezvous", "tcp://127.0.0.1:1", "--provider", "TFP"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "invalid choice: 'TFP'" in proc.stderr


def test_role_and_rank_must_match():
    proc = subprocess.run(
        [sys.executable, "-m", "mpc.party", "--role", "model-owner", "--rank", "0", "--world-size", "2",
         "--rendezvous", "tcp://127.0.0.1:1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "role model-owner must have rank 1" in proc.stderr


def test_launch_deletes_its_working_folder(tmp_path, monkeypatch):
    """Each party's params file holds that party's secret input: nothing is left behind."""
    import tempfile

    from mpc.launcher import launch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = launch("mpc.numerics_job:numerics_job", {"data-owner": {"inputs": {"exp": [-1.0, 0.0]}}}, timeout=120)
    assert out.result["exp"][1] == pytest.approx(1.0, abs=1e-4)
    assert list(tmp_path.iterdir()) == []
