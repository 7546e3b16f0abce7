"""The same `smt bench` runs on an earlier commit and on this tree, alternating, in one sitting.

    python bench/before_after.py --before 09a0937 --repeat 2 \\
        --case "minilm 64 1" --case "bert-base 128 1" --record bench/results/secure-links

The earlier commit is checked out in a temporary git worktree and run with this tree's virtual
environment (same torch, CrypTen, OpenSSL), so the only difference is the code.  Prints a table
of seconds per sequence and per layer, rounds and bytes, and writes JSON + Markdown with the CPU
model and flags (figures from different machines do not compare; ratios within one run do).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> dict:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    keep = [f for f in flags if f in {"aes", "vaes", "pclmulqdq", "vpclmulqdq", "avx2", "avx512f", "avx512dq", "avx512ifma", "sha_ni"}]
    return {"model": model, "cpus": info.count("processor\t:"), "flags": keep}


def _run(tree: Path, model: str, seq: int, batch: int, layers: int | None) -> dict:
    cmd = [sys.executable, "-m", "flows.cli", "bench", "--model", model, "--seq-len", str(seq), "--batch", str(batch),
           "--skip-vanilla", "--json"]  # fmt: skip
    if layers:
        cmd += ["--layers", str(layers)]
    done = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, timeout=7200)
    if done.returncode != 0:
        raise SystemExit(f"bench failed in {tree}:\n{done.stderr[-3000:]}")
    r = json.loads(done.stdout.strip().splitlines()[-1])["secure"]
    return {"seconds": r["seconds"], "per_layer_seconds": r["per_layer_mean"]["seconds"], "rounds": r["rounds"],
            "bytes": r["bytes"], "dealer_bytes": r["dealer_bytes"], "max_abs_error": r["max_abs_error"],
            "per_component_seconds": {k: v["seconds"] for k, v in r.get("per_component", {}).items()}}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="the earlier commit")
    p.add_argument("--case", action="append", required=True, help='"MODEL SEQ BATCH [LAYERS]"')
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--record", type=Path)
    args = p.parse_args()
    after = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="smt-before-") as tmp:
        old = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.before], cwd=ROOT, check=True, capture_output=True)
        try:
            rows = []
            for case in args.case:
                model, seq, batch, *rest = case.split()
                layers = int(rest[0]) if rest else None
                runs: dict[str, list[dict]] = {"before": [], "after": []}
                for _ in range(args.repeat):
                    for name, tree in (("before", old), ("after", ROOT)):
                        runs[name].append(_run(tree, model, int(seq), int(batch), layers))
                        print(name, case, runs[name][-1]["seconds"], flush=True)
                rows.append({"model": model, "seq_len": int(seq), "batch": int(batch), "layers": layers, "runs": runs})
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)
    lines = [f"# before ({args.before}) / after ({after}), alternating, {args.repeat} runs each, one sitting", "",
             f"CPU: {_cpu()['model']}, {_cpu()['cpus']} cores, flags {' '.join(_cpu()['flags'])}", "",
             "| model | T | B | layers | s before | s after | after/before | s/layer before | s/layer after | rounds | MB/party | dealer MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        b = statistics.median(x["seconds"] for x in r["runs"]["before"])
        a = statistics.median(x["seconds"] for x in r["runs"]["after"])
        lb = statistics.median(x["per_layer_seconds"] for x in r["runs"]["before"])
        la = statistics.median(x["per_layer_seconds"] for x in r["runs"]["after"])
        x = r["runs"]["after"][0]
        lines.append(f"| {r['model']} | {r['seq_len']} | {r['batch']} | {r['layers'] or 'all'} | {b:.2f} | {a:.2f} | "
                     f"{a / b:.2f} | {lb:.3f} | {la:.3f} | {x['rounds']} | {x['bytes'] / 1e6:.1f} | {x['dealer_bytes'] / 1e6:.1f} |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    print(text)
    if args.record:
        args.record.mkdir(parents=True, exist_ok=True)
        stamp = {"before": args.before, "after": after, "cpu": _cpu(), "when": datetime.now(UTC).isoformat(timespec="seconds")}
        (args.record / "before-after.json").write_text(json.dumps({**stamp, "cases": rows}, indent=1))
        (args.record / "before-after.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
