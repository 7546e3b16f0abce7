"""``smt bench``: our secure encoder, the vanilla CrypTen encoder and plaintext, in one run.

All three get the same random token ids (exact length ``--seq-len``, no padding).  Errors are
max |hidden - reference| of the final hidden states against a float64 plaintext forward of
the same weights.  ``--record`` keeps the figures in bench/results/ with the machine they ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mpc.api import run_inference
from mpc.config import BertConfig, cache_dir, resolve_model_dir
from mpc.errors import ConfigurationError
from mpc.session import plaintext_forward


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="minilm", help="minilm (real weights), bert-base (BERT-base shape, random weights) or a directory")
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--parties", type=int, default=2, choices=[2, 3])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads per party")
    p.add_argument("--skip-vanilla", action="store_true")
    p.add_argument("--before", action="store_true",
                   help="also run the previous engine (ours with CrypTen's comparison) side by side")
    p.add_argument("--record", type=Path, nargs="?", const=Path("bench/results"), help="write JSON + Markdown there")
    p.add_argument("--layers", type=int, default=None,
                   help="keep only the first N encoder layers (per-layer figures at large batch in less time)")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--json", action="store_true")


def _token_ids(cfg: BertConfig, batch: int, seq_len: int) -> list[list[int]]:
    # public benchmark inputs, drawn in the bench driver (not a party): seeded so runs compare
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(1000, cfg.vocab_size, (batch, seq_len), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
    return ids.tolist()


def _plaintext_seconds(model_dir: Path, ids: list[list[int]], threads: int, device: str = "cpu") -> float:
    """Hugging Face float32 forward on the same device as the parties (one warm-up)."""
    from transformers import AutoModel

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        m = AutoModel.from_pretrained(str(model_dir)).eval().to(device)
        x = torch.tensor(ids, device=device)
        with torch.no_grad():
            m(input_ids=x)  # warm-up
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            m(input_ids=x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            return time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)


def _cpu_model() -> str | None:
    """The CPU's model name (the host name alone does not say when a VM moved to other hardware)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _summary(res, ref_hidden: np.ndarray, layers: int) -> dict:
    c = res.cost
    per_layer = {k: v for k, v in c["per_scope"].items() if k.startswith("layer.")}
    return {
        "rounds": c["rounds"],
        "bytes": c["bytes"],
        "dealer_bytes": c["dealer_bytes"],
        "seconds": c["seconds"],
        "max_abs_error": float(np.abs(res.hidden - ref_hidden).max()),
        "per_layer_mean": {
            "rounds": sum(v["rounds"] for v in per_layer.values()) / max(1, len(per_layer)),
            "bytes": sum(v["bytes"] for v in per_layer.values()) / max(1, len(per_layer)),
            "dealer_bytes": sum(v["dealer_bytes"] for v in per_layer.values()) / max(1, len(per_layer)),
            "seconds": sum(v["seconds"] for v in per_layer.values()) / max(1, len(per_layer)),
        },
        "per_component": c["per_component"],
    }


def first_layers(model_dir: Path, layers: int) -> Path:
    """A copy of the model with only its first ``layers`` encoder layers (cached beside it)."""
    from transformers import AutoModel

    cfg = BertConfig.from_pretrained(model_dir)
    if not 1 <= layers <= cfg.num_hidden_layers:
        raise ConfigurationError(f"--layers must be in [1, {cfg.num_hidden_layers}] for {model_dir}, got {layers}")
    if layers == cfg.num_hidden_layers:
        return model_dir
    cache = cache_dir() / f"{model_dir.name}-first{layers}"
    if not (cache / "model.safetensors").is_file():
        import shutil

        tmp = cache.with_name(cache.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        AutoModel.from_pretrained(str(model_dir), num_hidden_layers=layers).eval().save_pretrained(tmp)
        for f in model_dir.iterdir():
            if f.name.startswith(("tokenizer", "vocab", "special_tokens")):
                shutil.copy(f, tmp / f.name)
        shutil.rmtree(cache, ignore_errors=True)
        tmp.rename(cache)
    return cache


def run(model: str, seq_len: int, batch: int, *, parties: int = 2, device: str = "cpu", threads: int = 1,
        skip_vanilla: bool = False, before: bool = False, timeout: float = 3600.0,
        launch_options: dict | None = None, layers: int | None = None) -> dict:  # fmt: skip
    model_dir = resolve_model_dir(model)
    if layers is not None:
        model_dir = first_layers(model_dir, layers)
    cfg = BertConfig.from_pretrained(model_dir)
    ids = _token_ids(cfg, batch, seq_len)
    _, ref_hidden = plaintext_forward(model_dir, token_ids=ids, return_hidden=True)
    ref_hidden = ref_hidden.numpy()
    out = {"model": model, "seq_len": seq_len, "batch": batch, "layers": cfg.num_hidden_layers,
           "parties": parties, "device": device}  # fmt: skip
    common: dict[str, Any] = dict(model=model_dir, parties=parties, max_length=max(seq_len, 8), token_ids=ids,
                  return_hidden=True, device=device, threads=threads, timeout=timeout,
                  launch_options=launch_options)  # fmt: skip
    out["secure"] = _summary(run_inference([], backend="secure", **common), ref_hidden, cfg.num_hidden_layers)
    if before:
        out["before"] = _summary(run_inference([], backend="secure-crypten-cmp", **common), ref_hidden, cfg.num_hidden_layers)
    if not skip_vanilla:
        out["vanilla"] = _summary(run_inference([], backend="vanilla", **common), ref_hidden, cfg.num_hidden_layers)
    out["plaintext"] = {"seconds": _plaintext_seconds(model_dir, ids, threads, device)}
    out["machine"] = {"host": platform.node(), "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                      "cpu_model": _cpu_model(),
                      "torch": torch.__version__, "when": datetime.now(UTC).isoformat(timespec="seconds"),
                      "cuda": torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else None}  # fmt: skip
    return out


# "before": our engine with CrypTen's comparison instead of the dealer-assisted one (--before)
LABELS = {"secure": "secure", "before": "ct-cmp", "vanilla": "vanilla"}


def table(r: dict) -> str:
    rows = [f"model {r['model']}  T={r['seq_len']}  B={r['batch']}  layers={r['layers']}  parties={r['parties']}  device={r['device']}",
            f"{'':<10}{'rounds':>10}{'MB/party':>12}{'dealer MB':>12}{'seconds':>10}{'max err':>12}"]  # fmt: skip
    for name in ("secure", "before", "vanilla"):
        if name in r:
            s = r[name]
            rows.append(f"{LABELS[name]:<10}{s['rounds']:>10}{s['bytes'] / 1e6:>12.1f}{s['dealer_bytes'] / 1e6:>12.1f}"
                        f"{s['seconds']:>10.2f}{s['max_abs_error']:>12.2e}")  # fmt: skip
    rows.append(f"{'plaintext':<10}{'':>10}{'':>12}{'':>12}{r['plaintext']['seconds']:>10.4f}")
    rows.append("per encoder layer (mean):")
    for name in ("secure", "before", "vanilla"):
        if name in r:
            s = r[name]["per_layer_mean"]
            rows.append(f"{LABELS[name]:<10}{s['rounds']:>10.0f}{s['bytes'] / 1e6:>12.1f}{s['dealer_bytes'] / 1e6:>12.1f}"
                        f"{s['seconds']:>10.2f}")  # fmt: skip
    for base in ("before", "vanilla"):
        if base not in r:
            continue
        s, v = r["secure"], r[base]
        rows.append(f"ratios secure/{LABELS[base]}: rounds {s['rounds'] / v['rounds']:.2f}, bytes {s['bytes'] / v['bytes']:.2f}, "
                    f"seconds {s['seconds'] / v['seconds']:.2f}, error {s['max_abs_error'] / max(v['max_abs_error'], 1e-12):.3g}, "
                    f"seconds per layer {s['per_layer_mean']['seconds'] / v['per_layer_mean']['seconds']:.2f}")  # fmt: skip
    return "\n".join(rows)


def command(args: argparse.Namespace) -> int:
    r = run(args.model, args.seq_len, args.batch, parties=args.parties, device=args.device,
            threads=args.threads, skip_vanilla=args.skip_vanilla, before=args.before, timeout=args.timeout,
            layers=args.layers)  # fmt: skip
    if args.record:
        args.record.mkdir(parents=True, exist_ok=True)
        stem = f"{r['model']}-T{r['seq_len']}-B{r['batch']}-p{r['parties']}-{r['device'].replace(':', '')}"
        if args.layers is not None:
            stem += f"-L{r['layers']}"
        (args.record / f"{stem}.json").write_text(json.dumps(r, indent=1))
        (args.record / f"{stem}.md").write_text("```\n" + table(r) + "\n```\n")
    if args.json:
        print(table(r))
        print(json.dumps({k: r[k] for k in r if k != "machine"} | {"machine": r["machine"]}))
    else:
        print(table(r))
    return 0
