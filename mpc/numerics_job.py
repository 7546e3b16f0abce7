"""A party job that evaluates one secure numeric function on the data owner's values.

Used by the numerics tests and ``bench/numerics_sweep.py``: the data owner secret-shares a
vector, every party runs the function, and the result is revealed to the data owner only.
"""

from __future__ import annotations

import torch

from mpc import numerics as nx
from mpc._crypten import crypten
from mpc.protocols import exact_truncation, reveal


def _share(ctx, values: list[float] | None, n: int, precision: int = 16):
    x = torch.tensor(values if ctx.rank == 0 else [0.0] * n, dtype=torch.float64)
    return crypten.cryptensor(x, src=0, precision=precision)._tensor.share


def numerics_job(ctx):
    p = ctx.params
    n = int(p["n"]) if "n" in p else len(p["values"])
    fn = p.get("function") if ctx.rank == 0 else None
    fn = crypten.communicator.get().broadcast_obj(fn, 0)
    share = _share(ctx, p.get("values"), n)
    x = nx.Fx(share, nx.F)
    with exact_truncation():
        if fn == "exp":
            y = nx.exp_neg(x)
        elif fn == "reciprocal":
            y = nx.reciprocal(x, upper=float(p.get("upper", 128)) if ctx.rank == 0 else 128.0)
        elif fn == "inv_sqrt":
            y = nx.inv_sqrt(x)
        elif fn == "gelu":
            y = nx.gelu(x)
        elif fn == "tanh":
            y = nx.tanh(x)
        elif fn == "softmax":
            rows = x.share.view(-1, 8)
            mask = torch.zeros_like(rows)
            if ctx.rank == 0:
                mask[:, :6] = 1  # last two keys padded
            y = nx.softmax(nx.Fx(rows, nx.F), mask, length=8)
            y = nx.Fx(y.share.reshape(-1), y.bits)
        elif fn == "truncate":
            y = nx.Fx(x.share * (1 << 16), 32)
            (y,) = nx.truncate([(y, 16)])
        else:
            raise ValueError(f"unknown function {fn}")
    out = reveal(y.share, y.bits, dst=0)
    return {"values": out.tolist()} if out is not None else None
