"""`smt bench` and `smt embed` through the real command line (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys


def _smt(*args: str, timeout: float = 600, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True,
                          timeout=timeout, input=stdin)  # fmt: skip


def test_bench_json_last_line(tiny_classifier_dir):
    done = _smt("bench", "--model", str(tiny_classifier_dir), "--seq-len", "8", "--batch", "2", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"model", "seq_len", "batch", "layers", "secure", "vanilla", "plaintext"} <= set(r)
    assert (r["seq_len"], r["batch"], r["layers"]) == (8, 2, 2)
    for name in ("secure", "vanilla"):
        assert {"rounds", "bytes", "dealer_bytes", "seconds", "max_abs_error"} <= set(r[name])
        assert r[name]["rounds"] > 0 and r[name]["bytes"] > 0 and r[name]["dealer_bytes"] > 0
    assert r["secure"]["max_abs_error"] < 0.02
    assert r["plaintext"]["seconds"] > 0


def test_bench_first_layers_only(tiny_classifier_dir, tmp_path, monkeypatch):
    """--layers 1: the model and its plaintext reference both keep one encoder layer (an error
    against the two-layer reference would be far above tolerance); per-layer rows printed."""
    monkeypatch.setenv("SMT_CACHE", str(tmp_path))
    done = _smt("bench", "--model", str(tiny_classifier_dir), "--seq-len", "8", "--layers", "1", "--skip-vanilla", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert r["layers"] == 1 and "vanilla" not in r
    assert r["secure"]["per_layer_mean"]["rounds"] > 0 and r["secure"]["max_abs_error"] < 0.02
    assert "per encoder layer (mean):" in done.stdout
    assert (tmp_path / f"{tiny_classifier_dir.name}-first1" / "model.safetensors").is_file()
    bad = _smt("bench", "--model", str(tiny_classifier_dir), "--layers", "5", "--skip-vanilla")
    assert bad.returncode == 2 and "--layers must be in [1, 2]" in bad.stderr


def test_embed_json_reports_cost_and_never_prints_the_text(tiny_classifier_dir):
    done = _smt("embed", "--model", str(tiny_classifier_dir), "--input", "-", "--json", stdin="a confidential note\n")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["kind"] == "classification" and summary["records"] == 1
    assert summary["rounds"] > 0 and summary["bytes_per_party"] > 0
    assert "confidential" not in done.stdout + done.stderr


def test_embed_unknown_model_is_a_clear_error():
    done = _smt("embed", "--model", "/nonexistent/model", "--input", "-", stdin="x\n")
    assert done.returncode == 2
    assert "neither a registered name" in done.stderr


def test_parties_run_by_hand_with_identities_from_smt_identity(tmp_path, tiny_classifier_dir):
    """The cross-host path: each organisation makes its identity, hands out its certificate, and
    runs `smt party` with its own directory; parameters come on standard input."""
    import shutil
    import socket

    import torch

    roles = {"data-owner": 0, "model-owner": 1, "dealer": 2}
    dirs = {r: tmp_path / r for r in roles}
    for role, d in dirs.items():
        done = _smt("identity", "create", "--role", role, "--dir", str(d))
        assert done.returncode == 0 and "sha256:" in done.stdout, done.stderr
        assert (d / f"{role}.key").stat().st_mode & 0o777 == 0o600
    for role, d in dirs.items():  # out of band: every party gets every certificate
        for other, od in dirs.items():
            if other != role:
                shutil.copy(od / f"{other}.crt", d / f"{other}.crt")
    shown = _smt("identity", "show", "--dir", str(dirs["dealer"]))
    assert shown.stdout.count("sha256:") == 3
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    params = {"data-owner": {"texts": ["a private note"], "tokenizer": str(tiny_classifier_dir), "max_length": 8,
                             "output": str(tmp_path / "out.pt")},
              "model-owner": {"model": str(tiny_classifier_dir), "max_length": 8}, "dealer": {}}  # fmt: skip
    procs = {}
    for role, rank in roles.items():
        cmd = [sys.executable, "-m", "flows.cli", "party", "--role", role, "--rank", str(rank), "--world-size", "2",
               "--rendezvous", f"tcp://127.0.0.1:{port}", "--identity-dir", str(dirs[role]), "--params", "-",
               "--report", str(tmp_path / f"{role}.json")]  # fmt: skip
        with open(tmp_path / f"{role}.log", "wb") as log:
            procs[role] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
        procs[role].stdin.write(json.dumps(params[role]).encode())
        procs[role].stdin.close()
    for role, p in procs.items():
        p.wait(timeout=300)
        assert p.returncode == 0, (role, (tmp_path / f"{role}.log").read_text()[-2000:])
    assert torch.load(tmp_path / "out.pt", weights_only=True)["outputs"].shape == (1, 3)
