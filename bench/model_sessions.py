"""Per-shard fixed cost and the main job, before and after persistent model sessions, in one sitting.

    python bench/model_sessions.py --before c19c1f4 --record bench/results/party-services

1. Fixed cost per shard (this tree, side by side, alternating): a one-text inference as a
   one-shot session (mpc/launcher.py: three processes started, links, weights shared, embedding
   table opened, as every shard paid before) against the same inference on an open model session
   (mpc/client.py against local services), plus that session's one-time set-up.
2. The main job (``smt infer --input data/sample_batch.csv``, the README's first command) on the
   ``--before`` commit (a temporary git worktree, this tree's virtual environment) and on this
   tree, alternating: wall seconds, and per-shard wall seconds from the manifests.

Writes JSON + Markdown with the CPU model and flags (ratios within one run compare; figures from
different machines do not).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

TEXT = ["The patient reported mild chest pain after exercise."]


def fixed_cost(repeat: int) -> dict:
    from mpc import client
    from mpc.api import run_inference

    svc = client.local_services("minilm")
    session = client.ModelSession(svc, model="minilm")
    t0 = time.perf_counter()
    session.open()
    setup = time.perf_counter() - t0
    one_shot, in_session = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run_inference(TEXT, model="minilm")
        one_shot.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        session.infer(TEXT)
        in_session.append(time.perf_counter() - t0)
    session.close()
    client.close_all()
    return {"one_shot_seconds": one_shot, "in_session_seconds": in_session, "session_setup_seconds": setup,
            "one_shot_median": statistics.median(one_shot), "in_session_median": statistics.median(in_session)}  # fmt: skip


def main_job(tree: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flows.cli", "infer", "--input", str(ROOT / "data/sample_batch.csv"),
                           "--output", str(out), "--json"], cwd=tree, capture_output=True, text=True, timeout=7200)  # fmt: skip
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"smt infer failed in {tree}:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    manifest = json.loads(Path(summary["manifest"]).read_text())
    shards = [s["cost"]["wall_seconds"] for s in manifest["shards"]]
    return {"wall_seconds": wall, "records_ok": summary["records_ok"], "shards_seconds": manifest["timings"]["shards_seconds"],
            "shard_wall_seconds": shards, "session_seconds": manifest["cost"]["seconds"]}  # fmt: skip


def main() -> int:
    from before_after import _cpu

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="the commit before persistent model sessions")
    p.add_argument("--repeat", type=int, default=3, help="fixed-cost repetitions")
    p.add_argument("--skip-main-job", action="store_true")
    p.add_argument("--record", type=Path)
    args = p.parse_args()
    result: dict = {"cpu": _cpu(), "date": datetime.now(UTC).isoformat(timespec="seconds"), "before": args.before,
                    "after": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                            text=True).stdout.strip()}  # fmt: skip
    result["fixed_cost"] = fixed_cost(args.repeat)
    print(json.dumps(result["fixed_cost"], indent=1), flush=True)
    if not args.skip_main_job:
        with tempfile.TemporaryDirectory(prefix="smt-before-") as tmp:
            old = Path(tmp) / "tree"
            subprocess.run(["git", "worktree", "add", "--detach", str(old), args.before], cwd=ROOT, check=True,
                           capture_output=True)  # fmt: skip
            try:
                result["main_job_before"] = main_job(old, Path(tmp) / "out-before")
                print("before", json.dumps(result["main_job_before"]), flush=True)
                result["main_job_after"] = main_job(ROOT, Path(tmp) / "out-after")
                print("after", json.dumps(result["main_job_after"]), flush=True)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)
        b, a = result["main_job_before"], result["main_job_after"]
        result["main_job_speedup"] = b["wall_seconds"] / a["wall_seconds"]
    if args.record:
        args.record.mkdir(parents=True, exist_ok=True)
        (args.record / "model_sessions.json").write_text(json.dumps(result, indent=1) + "\n")
        fc = result["fixed_cost"]
        lines = [f"# Persistent model sessions: {result['before']} -> {result['after']} ({result['date']})", "",
                 f"CPU: {result['cpu']['model']}, {result['cpu']['cpus']} CPUs, flags {' '.join(result['cpu']['flags'])}", "",
                 "| one-text inference | median seconds |", "|---|---|",
                 f"| one-shot session (every shard before) | {fc['one_shot_median']:.2f} |",
                 f"| on an open model session | {fc['in_session_median']:.2f} |",
                 f"| model session set-up (once per session) | {fc['session_setup_seconds']:.2f} |"]  # fmt: skip
        if "main_job_before" in result:
            lines += ["", "| main job (240 records, `smt infer`) | wall s | shards s |", "|---|---|---|",
                      f"| before | {b['wall_seconds']:.0f} | {b['shards_seconds']:.0f} |",
                      f"| after | {a['wall_seconds']:.0f} | {a['shards_seconds']:.0f} |", "",
                      f"Speed-up of the main job: {result['main_job_speedup']:.2f}x"]  # fmt: skip
        (args.record / "model_sessions.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
