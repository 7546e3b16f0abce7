"""The engine's public entry point: ``run_inference`` (one MPC session on loopback)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mpc.config import resolve_model_dir
from mpc.launcher import launch, session_dir


@dataclass(kw_only=True)
class InferenceResult:
    outputs: np.ndarray  # (B, D): L2-normalised embeddings, or logits for classifiers
    kind: str  # "embedding" | "classification"
    model_name: str
    cost: dict = field(default_factory=dict)
    hidden: np.ndarray | None = None  # last hidden states (B, T, H) when asked for

    @property
    def labels(self) -> list[int] | None:
        if self.kind != "classification":
            return None
        return [int(i) for i in self.outputs.argmax(axis=1)]


def merge_costs(reports: dict[str, dict], seconds: float) -> dict:
    """Session cost: rounds and per-scope figures as party 0 saw them; bytes per party."""
    p0 = reports["data-owner"]["cost"]
    per_party = {role: r["cost"]["bytes"] for role, r in reports.items() if "cost" in r}
    return {
        "rounds": p0["rounds"],
        "bytes": max(per_party.values()),
        "bytes_per_party": per_party,
        "dealer_bytes": p0["dealer_bytes"],
        "seconds": p0["seconds"],  # the data owner's session, set-up included
        "wall_seconds": round(seconds, 3),  # process start to exit
        "per_scope": p0["per_scope"],
        "per_component": p0["per_component"],
    }


def run_inference(
    texts: list[str],
    *,
    model: str | Path = "minilm",
    tokenizer: str | Path | None = None,
    parties: int = 2,
    max_length: int = 128,
    on_overlong: str = "truncate",
    pad_to: str = "longest",
    backend: str = "secure",
    timeout: float = 600.0,
    workdir: Path | None = None,
    device: str = "cpu",
    threads: int = 1,
    return_hidden: bool = False,
    env_by_role: dict[str, dict[str, str]] | None = None,
    param_overrides: dict[str, dict] | None = None,
    token_ids: list[list[int]] | None = None,
    launch_options: dict | None = None,
) -> InferenceResult:
    """Embed or classify ``texts`` with ``model`` under MPC; outputs revealed to the caller only.

    The caller is the data owner: the texts go only to the data owner's party process, the
    model directory only to the model owner's.  Raises InputError / ConfigurationError /
    ProtocolError / PartyFailure (mpc.errors) with the failing party named.
    """
    model_dir = resolve_model_dir(model)
    own = workdir is None
    work = Path(workdir) if workdir else session_dir()
    out_path = work / "outputs.pt"
    common = {"backend": backend, "max_length": max_length}
    params = {
        "data-owner": {**common, "texts": list(texts), "tokenizer": str(tokenizer or model_dir),
                       "on_overlong": on_overlong, "pad_to": pad_to, "output": str(out_path),
                       "return_hidden": return_hidden, "token_ids": token_ids},
        "model-owner": {**common, "model": str(model_dir), "return_hidden": return_hidden},
        "helper": {**common, "return_hidden": return_hidden},
    }  # fmt: skip
    for role, extra in (param_overrides or {}).items():
        params[role] = {**params.get(role, {}), **extra}
    opts = dict(launch_options or {})
    env = {**(env_by_role or {}), **opts.pop("env_by_role", {})}
    try:
        session = launch("mpc.session:inference_job", params, parties=parties, timeout=timeout,
                         workdir=work, device=device, threads=threads, env_by_role=env, **opts)  # fmt: skip
        saved = torch.load(out_path, weights_only=True)
        hidden = saved.get("hidden")
        return InferenceResult(
            outputs=saved["outputs"].numpy().astype(np.float32),
            kind=session.result["kind"],
            model_name=str(model if isinstance(model, str) and not Path(str(model)).is_dir() else model_dir.name),
            cost=merge_costs(session.reports, session.seconds),
            hidden=hidden.numpy() if hidden is not None else None,
        )
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def plan_batches(lengths: list[int], *, max_attention_cells: int = 65536, max_batch: int = 64) -> list[list[int]]:
    """Group record indices by token length so that padding stays small.

    Attention costs grow with B * T^2 (one comparison per score in the softmax maximum), so
    each group keeps B * T^2 <= ``max_attention_cells`` and B <= ``max_batch``.  Grouping by
    length reveals nothing new: each session's (B, T) is public anyway.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    current: list[int] = []
    for i in order:
        t = lengths[i]
        if current and ((len(current) + 1) * t * t > max_attention_cells or len(current) >= max_batch):
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    return groups


def token_lengths(texts: list[str], *, model: str | Path = "minilm", max_length: int = 128) -> list[int]:
    """Token counts as the data owner's party will see them (public tokenizer files)."""
    from mpc.session import load_tokenizer

    tok = load_tokenizer(resolve_model_dir(model))
    tok.no_truncation()
    tok.no_padding()
    return [min(len(tok.encode(t).ids), max_length) for t in texts]


def run_inference_batched(texts: list[str], *, model: str | Path = "minilm", max_attention_cells: int = 65536,
                          max_batch: int = 64, **kwargs) -> InferenceResult:  # fmt: skip
    """``run_inference`` over length-grouped sessions; outputs in the order of ``texts``;
    costs summed (rounds and seconds add up: the sessions run one after another)."""
    groups = plan_batches(token_lengths(texts, model=model, max_length=kwargs.get("max_length", 128)),
                          max_attention_cells=max_attention_cells, max_batch=max_batch)  # fmt: skip
    outputs: list[np.ndarray | None] = [None] * len(texts)
    total = {"rounds": 0, "bytes": 0, "dealer_bytes": 0, "seconds": 0.0, "sessions": 0}
    kind = name = ""
    for group in groups:
        res = run_inference([texts[i] for i in group], model=model, **kwargs)
        kind, name = res.kind, res.model_name
        for row, i in zip(res.outputs, group, strict=True):
            outputs[i] = row
        for k in ("rounds", "bytes", "dealer_bytes", "seconds"):
            total[k] += res.cost[k]
        total["sessions"] += 1
    return InferenceResult(outputs=np.stack([o for o in outputs if o is not None]), kind=kind, model_name=name, cost=total)
