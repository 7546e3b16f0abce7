"""`smt bench` and `smt embed` through the real command line (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys


def _smt(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=timeout)


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
    done = _smt("embed", "--model", str(tiny_classifier_dir), "--text", "a confidential note", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["kind"] == "classification" and summary["records"] == 1
    assert summary["rounds"] > 0 and summary["bytes_per_party"] > 0
    assert "confidential" not in done.stdout + done.stderr


def test_embed_unknown_model_is_a_clear_error():
    done = _smt("embed", "--model", "/nonexistent/model", "--text", "x")
    assert done.returncode == 2
    assert "neither a registered name" in done.stderr
