"""Parties in separate network namespaces joined by rate-limited veth links (bench/network.py).

Real namespaces, a real bridge and ``tc tbf`` shaping; needs root and iproute2 (CI runs as root
on the same machine).  A tiny classifier keeps it short: the point is that the launcher's
per-role command prefix and rendezvous address put every party in its own namespace, the
session still agrees with plaintext, and nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None,
                                reason="needs root, ip and tc")  # fmt: skip


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_session_across_shaped_namespaces_matches_plaintext(tiny_classifier_dir):
    import network

    from mpc.api import run_inference
    from mpc.session import plaintext_forward

    texts = ["the parcel arrived damaged", "please reset my password"]
    with network.namespaces("400mbit") as opts:
        assert {"smt-0", "smt-1", "smt-2"} <= _namespaces()
        mbps = network.measure_throughput(opts)
        res = run_inference(texts, model=tiny_classifier_dir, max_length=16, timeout=300, launch_options=opts)
    assert 30 < mbps < 60  # 400 Mbit/s is 50 MB/s: the link really is shaped
    ref = plaintext_forward(tiny_classifier_dir, texts).numpy()
    assert np.abs(res.outputs - ref).max() < 1e-2
    assert not {"smt-0", "smt-1", "smt-2"} & _namespaces()  # torn down
