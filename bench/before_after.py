"""Before/after table of the secure engine from ``smt bench --record`` files.

    python bench/before_after.py bench/results/engine-v2 bench/results/engine-v3 [SAME-DAY-BEFORE...]

For every (model, T, B) recorded in both folders: per encoder layer and per sequence, rounds,
MB sent per party, dealer MB and seconds, for the earlier engine, the later one and stock
CrypTen ("vanilla", from the later run: compare seconds only within one run).  Further folders
hold the earlier engine re-run on the later run's machine (``--skip-vanilla`` records), so its
seconds can be set beside the later ones.  Writes ``before-after.md`` in the later folder and
prints it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def _row(label: str, rec: dict, engine: str) -> str:
    e, b = rec[engine], rec["batch"]
    p = e["per_layer_mean"]
    return (f"| {label} | {p['rounds']:.0f} | {p['bytes'] / 1e6 / b:.1f} | {p['dealer_bytes'] / 1e6 / b:.1f} | "
            f"{p['seconds'] / b:.2f} | {e['rounds']} | {e['bytes'] / 1e6 / b:.0f} | {e['seconds'] / b:.1f} | "
            f"{e['max_abs_error']:.1e} |")  # fmt: skip


def main(before: str, after: str, *same_day: str) -> int:
    lines = ["Per encoder layer (mean) and whole model, per sequence; MB sent per party in the online",
             "exchange between computing parties, dealer MB beside it.  Seconds compare only within one",
             "run (shared 2-core machine).", ""]  # fmt: skip
    for path in sorted(Path(after).glob("*-p*-*.json")):
        if path.stem.endswith("components"):
            continue
        old = Path(before) / (re.sub(r"-L\d+$", "", path.stem) + ".json")  # per-layer means match
        new = json.loads(path.read_text())
        lines += [f"### {new['model']}, T={new['seq_len']}, B={new['batch']}, {new['layers']} layers", "",
                  "| engine | rounds/layer | MB/layer | dealer MB/layer | s/layer | rounds | MB | s | max err |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        if old.exists():
            prev = json.loads(old.read_text())
            lines.append(_row(f"ours, before ({Path(before).name}, earlier run, other hardware)", prev, "secure"))
            lines.append(_row("CrypTen stock (earlier run, other hardware)", prev, "vanilla"))
        for folder in same_day:
            again = Path(folder) / path.name
            if again.exists():
                lines.append(_row(f"ours, before ({Path(folder).name}, same machine as this run)",
                                  json.loads(again.read_text()), "secure"))  # fmt: skip
        if "before" in new:
            lines.append(_row("ours with CrypTen's comparison (this run)", new, "before"))
        lines.append(_row("**ours, after (this run)**", new, "secure"))
        if "vanilla" in new:
            lines.append(_row("CrypTen stock (this run)", new, "vanilla"))
        lines.append("")
    text = "\n".join(lines)
    (Path(after) / "before-after.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
