"""A party job that evaluates our secure numeric functions on the data owner's values.

Used by the numerics tests and benchmarks: the data owner secret-shares each vector, every
party runs the function, and the result is revealed to the data owner only.
"""

from __future__ import annotations

import torch

from mpc import numerics as nx
from mpc._crypten import comm, crypten
from mpc.protocols import exact_truncation, plain, reveal

# function name -> (input fractional bits, secure function)
FUNCTIONS = {
    "exp": (nx.F, lambda x: nx.exp_neg(x)),
    "reciprocal": (nx.F, lambda x: nx.reciprocal(x, upper=128.0)),
    "inv_sqrt": (nx.G, lambda x: nx.inv_sqrt(x)),
    "gelu": (nx.F, lambda x: nx.gelu(x)),
    "tanh": (nx.F, lambda x: nx.tanh(x)),
    "softmax8": (nx.F, None),  # rows of 8 logits, last two keys padded
    "truncate": (nx.F, None),  # x * 2^16 at 32 bits, truncated back to 16 bits
}


def _softmax8(x: nx.Fx, rank: int) -> nx.Fx:
    rows = x.share.view(-1, 8)
    mask = torch.zeros_like(rows)
    if rank == 0:
        mask[:, :6] = 1
    y = nx.softmax(nx.Fx(rows, nx.F), mask, length=8)
    return nx.Fx(y.share.reshape(-1), y.bits)


def numerics_job(ctx):
    spec = comm.get().broadcast_obj(
        {k: len(v) for k, v in ctx.params["inputs"].items()} if ctx.rank == 0 else None, 0
    )
    results = {}
    with exact_truncation():
        for name, n in spec.items():
            bits, fn = FUNCTIONS[name]
            values = ctx.params["inputs"][name] if ctx.rank == 0 else [0.0] * n
            share = plain(crypten.cryptensor(torch.tensor(values, dtype=torch.float64), src=0, precision=bits)._tensor.share)
            x = nx.Fx(share, bits)
            if name == "softmax8":
                y = _softmax8(x, ctx.rank)
            elif name == "truncate":
                (y,) = nx.truncate([(nx.Fx(x.share * (1 << 16), 32), 16)])
            else:
                y = fn(x)
            out = reveal(y.share, y.bits, dst=0)  # any scale: reveal decodes y.bits
            if out is not None:
                results[name] = out.tolist()
    return results if ctx.rank == 0 else None


def comparison_job(ctx):
    """Sign tests of ring integers at several widths k, with what each party sends observed.

    Params of the data owner: ``cases``: list of (k, values as ints[, fuzz]).  Returns per case the
    revealed bits and, for the masking tests, the opened c values and the dealer's view
    (the sum mod 67 of every party's blinded vectors; the other parties send theirs to the
    data owner here, in this test job only).
    """
    from mpc import comparison
    from mpc.comparison import P_FIELD, ltz_many, observe_comparisons

    chunk = comm.get().broadcast_obj(ctx.params.get("chunk") if ctx.rank == 0 else None, 0)
    if chunk:  # tests: several chunks of comparison vectors in one comparison
        comparison._CMP_CHUNK = chunk
    cases = comm.get().broadcast_obj(
        [(c[0], len(c[1]), c[2] if len(c) > 2 else 0) for c in ctx.params["cases"]] if ctx.rank == 0 else None, 0
    )
    out = []
    for i, (k, n, fuzz) in enumerate(cases):
        values = torch.tensor(ctx.params["cases"][i][1] if ctx.rank == 0 else [0] * n, dtype=torch.long)
        share = plain(crypten.mpc.MPCTensor(values, src=0, precision=0)._tensor.share)
        seen: list = []
        with observe_comparisons(lambda c, d, extras, seen=seen: seen.append((c.clone(), d.clone()))):
            (bits,) = ltz_many([share], k=k, fuzz=fuzz)
        c, d = seen[0]
        d = d.long()
        if ctx.rank == 0:
            for src in range(1, comm.get().get_world_size()):
                other = torch.empty_like(d)
                other = comm.get().recv(other, src)
                d = d + other
        else:
            comm.get().send(d, 0)
        revealed = reveal(bits, 0, dst=0)
        if ctx.rank == 0:
            view = d % P_FIELD
            out.append({"bits": revealed.long().tolist(), "c": c.tolist(), "zeros": (view == 0).sum(-1).tolist(),
                        "zero_at": torch.where((view == 0).any(-1), (view == 0).long().argmax(-1), -1).tolist()})  # fmt: skip
    return out if ctx.rank == 0 else None


def comparison_view_job(ctx):
    """One comparison of ``n`` values at width ``k``; every computing party returns what the dealer
    receives from it (``d``), what the dealer knows of it (its Z_67 shares ``a``) and, for the
    test's positive control, its vectors before the zero-sum mask; the data owner adds c.
    Test-only: tests/mpc/test_comparison.py attacks this view as the dealer would."""
    from mpc.comparison import ltz_many, observe_comparisons

    k, n = comm.get().broadcast_obj((ctx.params["k"], len(ctx.params["values"])) if ctx.rank == 0 else None, 0)
    values = torch.tensor(ctx.params["values"] if ctx.rank == 0 else [0] * n, dtype=torch.long)
    share = plain(crypten.mpc.MPCTensor(values, src=0, precision=0)._tensor.share)
    seen: list = []
    with observe_comparisons(lambda c, d, extras: seen.append((c.clone(), d.clone(), extras))):
        ltz_many([share], k=k)
    c, d, extras = seen[0]
    return {"rank": ctx.rank, "c": c.tolist(), "d": d.long().tolist(), "a": extras["a"].long().tolist(),
            "unmasked": extras["unmasked"].long().tolist()}  # fmt: skip
