"""Orchestration overhead of the secure-inference flow: flow wall time vs. the sum of MPC sessions.

    python bench/inference_overhead.py --records 1000 --shard-size 32 [--model minilm|DIR]

Generates a batch of synthetic records, runs ``smt infer`` on it (ephemeral Prefect, local Dask
cluster) and writes ``bench/results/inference_overhead-<model>-<records>.json`` with the flow's
wall time, the summed session seconds and the overhead fraction (goal: <= 10%).  With a tiny
model the sessions are short, so the fraction is an upper bound on MiniLM's.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = "parcel invoice refund delivery account password meeting schedule insurance claim".split()


def make_batch(path: Path, n: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["record_id", "subject_id", "text", "region"])
        for i in range(n):
            text = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(6 + i % 10))
            w.writerow([f"b{i:05d}", f"subj{i % 97}", text, ("europe", "apac", "americas")[i % 3]])


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--shard-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=32)
    p.add_argument("--model", default="minilm")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        batch = Path(tmp) / "batch.csv"
        make_batch(batch, args.records)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "flows.cli_infer", "infer", "--input", str(batch), "--output",
             str(Path(tmp) / "out"), "--model", args.model, "--shard-size", str(args.shard_size),
             "--max-length", str(args.max_length), "--json"],
            cwd=ROOT, capture_output=True, text=True, check=False)
        command_wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        manifest = json.loads(Path(summary["manifest"]).read_text())
    sessions = sum(s["cost"]["wall_seconds"] for s in manifest["shards"])
    flow_wall = manifest["timings"]["total_seconds"]
    result = {
        "records": args.records, "shard_size": args.shard_size, "max_length": args.max_length,
        "model": args.model if args.model == "minilm" else Path(args.model).name,
        "shards": len(manifest["shards"]), "flow_wall_seconds": flow_wall,
        "sum_session_wall_seconds": round(sessions, 3),
        "overhead_fraction": round((flow_wall - sessions) / flow_wall, 4),
        "command_wall_seconds": round(command_wall, 3), "timings": manifest["timings"],
        "note": "sessions run one at a time on this 2-core machine (1 Dask worker); "
                "command wall includes Prefect's ephemeral server start",
    }
    out = ROOT / "bench" / "results" / f"inference_overhead-{result['model']}-{args.records}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
