"""Parity sweeps too long for the test suite, recorded in bench/results/.

    python bench/parity.py texts [N]      # N varied texts (default 200), MiniLM, secure vs HF
    python bench/parity.py sequences [N]  # N random-token sequences (default 1000), MiniLM

Prints and records: the minimum cosine, the maximum absolute error, and the count of
outliers (cosine < 0.999 or error > 0.01).  Run from the repository root.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mpc.api import run_inference, run_inference_batched  # noqa: E402
from mpc.session import plaintext_forward  # noqa: E402
from tests.mpc.texts import varied_texts  # noqa: E402


def cosines(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def sweep_texts(n: int) -> dict:
    texts = varied_texts(n, seed=11)
    t0 = time.time()
    res = run_inference_batched(texts, model="minilm", max_attention_cells=131072, timeout=3600)
    ref = plaintext_forward("minilm", texts).numpy()
    return _report("texts", res.outputs, ref, time.time() - t0, res.cost["sessions"])


def sweep_sequences(n: int, seq_len: int = 16, batch: int = 100) -> dict:
    g = torch.Generator().manual_seed(99)
    outs, refs, sessions = [], [], 0
    t0 = time.time()
    for start in range(0, n, batch):
        b = min(batch, n - start)
        ids = torch.randint(1000, 30522, (b, seq_len), generator=g)
        ids[:, 0], ids[:, -1] = 101, 102
        res = run_inference([], model="minilm", token_ids=ids.tolist(), max_length=seq_len, timeout=3600)
        outs.append(res.outputs)
        refs.append(plaintext_forward("minilm", token_ids=ids).numpy())
        sessions += 1
    return _report("sequences", np.concatenate(outs), np.concatenate(refs), time.time() - t0, sessions)


def _report(kind, out, ref, seconds, sessions) -> dict:
    cos = cosines(out, ref)
    err = np.abs(out - ref).max(1)
    return {
        "kind": kind, "n": len(out), "sessions": sessions, "seconds": round(seconds, 1),
        "min_cosine": float(cos.min()), "max_abs_error": float(err.max()),
        "outliers": int(((cos < 0.999) | (err > 0.01)).sum()),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip


if __name__ == "__main__":
    kind = sys.argv[1] if len(sys.argv) > 1 else "texts"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else (200 if kind == "texts" else 1000)
    r = sweep_texts(n) if kind == "texts" else sweep_sequences(n)
    print(json.dumps(r))
    out = Path("bench/results") / f"parity-minilm-{kind}-{n}.json"
    out.write_text(json.dumps(r, indent=1))
