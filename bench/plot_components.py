"""Cost per component (linear, attention, softmax, GELU, LayerNorm, truncation...) as a PNG,
and a before/after Markdown table, from ``smt bench --before --record`` JSON files.

    python bench/plot_components.py bench/results/after/bert-base-T128-B1-p2-cpu.json ...

Writes ``<stem>-components.png`` and ``<stem>-components.md`` next to each input.  Needs
matplotlib (``pip install -e '.[bench]'``).  Bytes are sent per party per sequence; rounds are
per session (the batch shares them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ENGINES = [("vanilla", "CrypTen stock", "#999999"), ("before", "ours with CrypTen comparison", "#6a9fd4"),
           ("secure", "ours, dealer comparison", "#d4552b")]  # fmt: skip
ORDER = ["embedding", "linear", "attention", "softmax", "gelu", "layernorm", "truncation", "pooling", "head"]


def components(record: dict) -> list[str]:
    seen = set()
    for engine, *_ in ENGINES:
        seen |= set(record.get(engine, {}).get("per_component", {}))
    return [c for c in ORDER if c in seen] + sorted(seen - set(ORDER))


def table(record: dict) -> str:
    b = record["batch"]
    comps = components(record)
    present = [e for e in ENGINES if e[0] in record]
    head = "| component | " + " | ".join(f"{label} MB/seq | rounds | s/seq" for _, label, _ in present) + " |"
    lines = [f"{record['model']} T={record['seq_len']} B={b}, {record['layers']} layers, whole model; MB sent per "
             "party per sequence; wall seconds of each component block at the data owner (a truncation's time "
             "counts to the component that asked for it)", "",
             head, "|---|" + "---|---|---|" * len(present)]  # fmt: skip
    for c in comps + ["total"]:
        cells = []
        for engine, *_ in present:
            v = record[engine] if c == "total" else record[engine]["per_component"].get(c, {"bytes": 0, "rounds": 0})
            cells.append(f"{v['bytes'] / 1e6 / b:.1f} | {v['rounds']} | {v.get('seconds', 0) / b:.2f}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    per_layer = [f"{label}: {record[e]['per_layer_mean']['rounds']:.0f} rounds, "
                 f"{record[e]['per_layer_mean']['bytes'] / 1e6 / b:.1f} MB/seq, "
                 f"dealer {record[e]['per_layer_mean']['dealer_bytes'] / 1e6 / b:.1f} MB/seq, "
                 f"{record[e]['per_layer_mean']['seconds']:.2f} s" for e, label, _ in present]  # fmt: skip
    return "\n".join(lines + ["", "Per encoder layer: " + "; ".join(per_layer)]) + "\n"


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    comps = components(record)
    present = [e for e in ENGINES if e[0] in record]
    x = np.arange(len(comps))
    width = 0.8 / len(present)
    panels = [("bytes", "MB sent per party per sequence", 1e6 * record["batch"]),
              ("rounds", "rounds per session", 1)]  # fmt: skip
    if any(v.get("seconds") for e in present for v in record[e[0]]["per_component"].values()):
        panels.append(("seconds", "wall seconds per sequence (data owner)", record["batch"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5))
    for ax, (key, unit, scale) in zip(axes, panels, strict=True):
        for i, (engine, label, colour) in enumerate(present):
            vals = [record[engine]["per_component"].get(c, {}).get(key, 0) / scale for c in comps]
            ax.bar(x + (i - (len(present) - 1) / 2) * width, vals, width, label=label, color=colour)
        ax.set_xticks(x, comps, rotation=30, ha="right")
        ax.set_ylabel(unit)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"{record['model']}, {record['seq_len']} tokens, batch {record['batch']}, "
                 f"{record['parties']} parties + dealer, {record['device']}")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(paths: list[str]) -> int:
    for name in paths:
        src = Path(name)
        record = json.loads(src.read_text())
        stem = src.with_suffix("")
        plot(record, Path(f"{stem}-components.png"))
        Path(f"{stem}-components.md").write_text(table(record))
        print(table(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
