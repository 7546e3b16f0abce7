"""Our secure non-linear functions: exp, reciprocal, inverse square root, GELU, softmax, tanh.

They work on this party's raw additive shares (int64, ring Z_2^64) with an explicit number of
fractional bits, so each function can compute at the precision it needs (2^-16 for activations,
2^-30 inside exponentials) and truncate exactly (mpc.protocols; no wrap-around outliers).
Independent products are opened together (one round), truncations batched likewise.

Inputs and outputs at the module boundary are CrypTen ``MPCTensor`` objects with CrypTen's
16 fractional bits.  Each function states its formula, valid input range and the error we
measured (tests/test_numerics.py sweeps the range and past its edges; figures below are from
those sweeps, 2 parties + dealer).  Outside the valid range results are wrong, never an
overflow of the ring: every intermediate is bounded well below 2^62 over the range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mpc._crypten import comm
from mpc.comparison import ltz_many
from mpc.protocols import mul_many, truncate_shares_many

F = 16  # CrypTen's fractional bits
HI = 30  # fractional bits inside exp / reciprocal chains


@dataclass
class Fx:
    """This party's share of a fixed-point tensor: value = share / 2^bits (summed over parties)."""

    share: torch.Tensor
    bits: int

    # local operations ------------------------------------------------------------------
    def __add__(self, other: Fx) -> Fx:
        a, b = _align(self, other)
        return Fx(a.share + b.share, a.bits)

    def __sub__(self, other: Fx) -> Fx:
        a, b = _align(self, other)
        return Fx(a.share - b.share, a.bits)

    def __neg__(self) -> Fx:
        return Fx(-self.share, self.bits)

    def add_public(self, value: float) -> Fx:
        out = self.share.clone()
        if comm.get().get_rank() == 0:
            out = out + int(round(value * (1 << self.bits)))
        return Fx(out, self.bits)

    def rescale_up(self, bits: int) -> Fx:
        """Exact, local: more fractional bits."""
        if bits < self.bits:
            raise ValueError("rescale_up cannot drop bits; truncate instead")
        return Fx(self.share << (bits - self.bits), bits)

    def times_int(self, k: int | torch.Tensor) -> Fx:
        return Fx(self.share * k, self.bits)


def _align(a: Fx, b: Fx) -> tuple[Fx, Fx]:
    if a.bits == b.bits:
        return a, b
    bits = max(a.bits, b.bits)
    return a.rescale_up(bits), b.rescale_up(bits)


def public_fx(value: torch.Tensor | float, bits: int) -> torch.Tensor:
    """A public constant encoded at ``bits`` fractional bits (as an int64 tensor)."""
    return torch.round(torch.as_tensor(value, dtype=torch.float64) * (1 << bits)).long()


def mul(pairs: list[tuple]) -> list[Fx]:
    """Products of pairs ``(a, b, bits)`` or ``(a, b, bits, shift)``: a*b / 2^shift at ``bits``.

    One round opens every product; one more round truncates them all.
    """
    raws = mul_many([(p[0].share, p[1].share) for p in pairs])
    items = []
    for raw, p in zip(raws, pairs, strict=True):
        a, b, bits = p[0], p[1], p[2]
        shift = p[3] if len(p) > 3 else 0
        drop = a.bits + b.bits - bits + shift
        if drop < 0:
            raise ValueError("cannot gain precision in a product")
        items.append((raw, 1 << drop))
    outs = truncate_shares_many(items)
    return [Fx(s, p[2]) for s, p in zip(outs, pairs, strict=True)]


def mul_bit(x: Fx, bit: torch.Tensor) -> Fx:
    """x * b for an integer-shared bit b: one round, no truncation."""
    return Fx(mul_many([(x.share, bit)])[0], x.bits)


# Sign tests compare at the width the value needs (mpc.comparison.ltz_many: |x| < 2^(k-1) ring
# units): activations, logits and their differences are far below 2^15 in magnitude.
SIGN_RANGE_LOG2 = 15


def cmp_width(bits: int, range_log2: int) -> int:
    """Comparison width k for values of ``bits`` fractional bits and magnitude below 2^range_log2."""
    return min(64, bits + range_log2 + 1)


def truncate(items: list[tuple[Fx, int]]) -> list[Fx]:
    outs = truncate_shares_many([(x.share, 1 << (x.bits - bits)) for x, bits in items])
    return [Fx(s, bits) for s, (_, bits) in zip(outs, items, strict=True)]


# ------------------------------------------------------------------------------------------
# exp


EXP_SQUARINGS = 10
EXP_MIN = -1900.0


def exp_neg(u: Fx, out_bits: int = F, squarings: int = EXP_SQUARINGS) -> Fx:
    """exp(u) for u <= 0.

    Formula: exp(u) = p(v)^(2^k) with v = u / 2^k and p(v) = 1 + v + v^2/2, evaluated with
    30 fractional bits and k squarings (k = 10 by default; softmax uses 8).
    Valid range: u in [-1.85 * 2^k, 0] ([-1900, 0] for k = 10, [-475, 0] for k = 8): p(v)
    stays in [0.5, 1) there, so large negative inputs decay to 0 instead of blowing up; up to
    +1e-3 is tolerated.  Below the range the result is wrong.
    Error: relative |u|^3 / (6 * 4^k) + ~2^(k-30) from rounding, i.e. below 3e-6 (k = 10) and
    1e-5 (k = 8) absolute over the range (tests/test_numerics.py); values under 2^-out_bits
    read as 0.
    """
    if u.bits + squarings <= HI:  # v = u / 2^k at HI bits, exactly and locally
        v = Fx(u.share << (HI - u.bits - squarings), HI)
    else:
        (v,) = truncate([(Fx(u.share, u.bits + squarings), HI)])
    return _exp_from_v(v, out_bits, squarings)


def _exp_from_v(v: Fx, out_bits: int, squarings: int = EXP_SQUARINGS) -> Fx:
    """p(v)^(2^k) for v = u/2^k at HI fractional bits (see exp_neg)."""
    (half_v2,) = mul([(v, v, HI, 1)])  # v^2 / 2
    p = (v + half_v2).add_public(1.0)
    return square_chain(p, squarings, out_bits)


def square_chain(p: Fx, times: int, out_bits: int) -> Fx:
    """p^(2^times) at ``out_bits``: one Beaver square, then each truncation also yields the
    next square (mpc.protocols.truncate_shares_many, squares=): times + 1 rounds, not 2 times."""
    if times == 0:
        return p
    (raw,) = mul_many([(p.share, p.share)])
    bits = p.bits
    for i in range(times):
        last = i == times - 1
        target = out_bits if last else bits
        (item,) = truncate_shares_many([(raw, 1 << (2 * bits - target))], squares=[not last])
        if last:
            return Fx(item, target)
        y, raw = item
    raise ValueError("square_chain needs times >= 1")


# ------------------------------------------------------------------------------------------
# reciprocal


def reciprocal(s: Fx, upper: float, out_bits: int = F) -> Fx:
    """1 / s for s in [1, upper].

    Formula (Goldschmidt): with U = 2^ceil(log2 upper) and e = 1 - s/U in [0, 1 - 1/U],
    1/s = (1/U) * prod_{j<k} (1 + e^(2^j)), k = log2(U) + 4 factors; the squarings of e and the
    running product advance together (one round of products per step).
    Valid range: s in [1, upper] (also (0, 1) with slower convergence: below 1/4 it is inexact);
    s up to 2U converges too.
    Error: relative (1 - 1/U)^(2^k) < e^-16 plus rounding; absolute below 5e-5 (tests).
    """
    u = max(0, math.ceil(math.log2(max(upper, 1.0))))
    if s.bits != F or u > HI - 2 - F:
        raise ValueError(f"reciprocal needs 16 fractional bits and upper <= 2^{HI - 2 - F}")
    e = Fx(-(s.share << (HI - F - u)), HI).add_public(1.0)  # e_0 = 1 - s/U, exact and local
    p = Fx(-(s.share << (HI - 2 - F - u)), HI - 2).add_public(2.0)  # P_1 = 1 + e_0
    (e,) = mul([(e, e, HI)])  # e_1
    steps = u + 4
    for j in range(1, steps):  # P_{j+1} = P_j (1 + e_j), e_{j+1} = e_j^2, in one round
        if j == steps - 1:
            (p,) = mul([(p, e.add_public(1.0), out_bits, u)])  # last factor, and divide by U
        else:
            e, p = mul([(e, e, HI), (p, e.add_public(1.0), F)])
    return p


# ------------------------------------------------------------------------------------------
# inverse square root

INV_SQRT_LO, INV_SQRT_HI = -10, 16
G = 24  # fractional bits inside the inverse square root


def inv_sqrt(v: Fx, lo: int = INV_SQRT_LO, hi: int = INV_SQRT_HI) -> Fx:
    """1 / sqrt(v) for v in [2^lo, 2^hi] (default [0.001, 65536]); result at 23 fractional bits.

    Pass v with 24 fractional bits where it is small: at 16 bits, v = 0.001 is itself only
    known to 1.5%.

    Formula: an initial guess y0 = c / sqrt(theta) from the largest threshold theta = 2^(k/4)
    below v (all thresholds compared in one batched comparison on the small tensor of
    variances; c^2 = 2/(1+2^(1/4)) centres v*y0^2 in [0.91, 1.09]), then two Goldschmidt
    iterations g <- g(1+r), h <- h(1+r), r = 1/2 - g h, from g = v y0, h = y0/2 (g -> sqrt v,
    h -> 1/(2 sqrt v)), at 24 fractional bits.  y0 and y0^2 are both linear in the comparison
    bits, so the first r = 1/2 - v y0^2 / 2 comes with g = v y0 in one round.
    Valid range: [2^lo, 2^hi]; below 2^lo the result is too small (not converged), above 2^hi
    too large.  Error: relative below 2e-6 over the range, plus 2^-24 absolute.
    """
    if v.bits > G:
        raise ValueError(f"inv_sqrt takes at most {G} fractional bits")
    c = math.sqrt(2.0 / (1.0 + 2.0**0.25))
    thetas = [2.0 ** (k / 4) for k in range(4 * lo, 4 * hi + 1)]
    dev = v.share.device
    offsets = public_fx(torch.tensor(thetas[1:]), v.bits).to(dev).view((-1,) + (1,) * v.share.dim())
    if comm.get().get_rank() != 0:
        offsets = torch.zeros_like(offsets)
    # |v - theta| < 2^(hi + 3) (room past the valid range): a (bits + hi + 4)-bit comparison
    (below,) = ltz_many([v.share.unsqueeze(0) - offsets], k=cmp_width(v.bits, hi + 3))  # [v < theta_i]
    # interval indicators ind_i = [theta_i <= v < theta_{i+1}] are linear in the bits, so both
    # y0 = sum ind_i c/sqrt(theta_i) and y0^2 = sum ind_i c^2/theta_i are local combinations
    one = torch.ones_like(below[:1]) if comm.get().get_rank() == 0 else torch.zeros_like(below[:1])
    at_least = torch.cat([one, one - below])  # [v >= theta_i], i >= 0 (theta_0 assumed)
    ind = at_least - torch.cat([at_least[1:], torch.zeros_like(one)])
    shape = (-1,) + (1,) * v.share.dim()
    y0c = public_fx(torch.tensor([c / math.sqrt(t) for t in thetas]), G).to(dev).view(shape)
    y0sq = public_fx(torch.tensor([c * c / t for t in thetas]), G).to(dev).view(shape)
    y0 = Fx((ind * y0c).sum(0), G)
    q = Fx((ind * y0sq).sum(0), G)
    g, vq = mul([(v, y0, G), (v, q, G, 1)])  # g = v y0, vq = v y0^2 / 2
    h = Fx(y0.share, G + 1)  # y0 / 2
    r = (-vq).add_public(0.5)  # r = 1/2 - g h
    g, h = _plus_times(g, h, r)
    (gh,) = mul([(g, h, G)])
    r = (-gh).add_public(0.5)
    (hr,) = mul([(h, r, G)])
    h = h + hr
    return Fx(h.share, h.bits - 1)  # 2h


def _plus_times(g: Fx, h: Fx, r: Fx) -> tuple[Fx, Fx]:
    """(g + g r, h + h r) in one round of products."""
    gr, hr = mul([(g, r, g.bits), (h, r, h.bits)])
    return g + gr, h + hr


# ------------------------------------------------------------------------------------------
# GELU

# r(t) = -ln(2 Phi(-t)) ~ c1 tau + c2 tau^2 + c3 tau^3 with tau = t/8 (least squares on
# [0, 7.5] weighted by t Phi(-t)); then t Phi(-t) = t/2 * exp(-r(t)).
_GELU_R = (6.294980834452642, 22.06099146570242, 8.673279705627863)
GELU_MAX_ABS = 32.0


GELU_SQUARINGS = 9
GELU_SIGN_RANGE_LOG2 = 11


def gelu(x: Fx) -> Fx:
    """GELU(x) = x Phi(x) with the exact (erf) Phi, as BERT uses it.

    Formula: GELU(x) = relu(x) - h(|x|) with h(t) = t Phi(-t) = (t/2) exp(-r(t)) and
    r(t) = -ln(2 Phi(-t)) approximated by a cubic in t/8; relu and |x| from one comparison;
    exp with 9 squarings.  The result is left at 33 fractional bits (no final truncation: the
    next linear layer truncates once).
    Valid range: |x| <= 32 (r(t) stays within exp's range [-947, 0]; real MiniLM inputs reach
    25).  Error: below 2.5e-4 absolute over [-32, 32] (the cubic's fit error dominates).
    """
    # sign at |x| < 2^11 (valid range 32; real MiniLM 25), near-zero band 2^-8 left fuzzy: both
    # branches of relu(x) - h(|x|) give x Phi(x) there (t = -|x| just evaluates h(-|x|))
    (neg,) = ltz_many([x.share], k=cmp_width(x.bits, GELU_SIGN_RANGE_LOG2), fuzz=max(0, x.bits - 8))
    bx = mul_bit(x, neg)
    relu = x - bx
    t = x - bx.times_int(2)  # |x|
    c1, c2, c3 = (_GELU_R[0] / 8, _GELU_R[1] / 64, _GELU_R[2] / 512)
    (t2,) = mul([(t, t, F)])
    # w = c1 + c2 t + c3 t^2 at 2F bits (public constants at F bits times shares at F bits)
    w = Fx(t.share * int(public_fx(c2, F)) + t2.share * int(public_fx(c3, F)), 2 * F).add_public(c1)
    (v,) = mul([(t, w, HI, GELU_SQUARINGS)])  # r / 2^9 at HI bits
    e = _exp_from_v(-v, out_bits=F, squarings=GELU_SQUARINGS)
    (h_raw,) = mul_many([(t.share, e.share)])  # t * exp(-r) at 2F bits
    return relu - Fx(h_raw, 2 * F + 1)  # h = t exp(-r) / 2


# ------------------------------------------------------------------------------------------
# tanh


def tanh(x: Fx) -> Fx:
    """tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|).

    Valid range: |x| <= 950 (exp's range).  Error: below 3e-5 absolute.
    """
    (neg,) = ltz_many([x.share], k=cmp_width(x.bits, SIGN_RANGE_LOG2))
    bx = mul_bit(x, neg)
    t = x - bx.times_int(2)
    e = exp_neg(-t.times_int(2), out_bits=F)
    r = reciprocal(e.add_public(1.0), upper=2.0)
    (y,) = mul([(e.times_int(-1).add_public(1.0), r, F)])
    yb = mul_bit(y, neg)
    return y - yb.times_int(2)


# ------------------------------------------------------------------------------------------
# softmax

MASK_BIAS = 300.0
SOFTMAX_MAX_SPREAD = 170.0
SOFTMAX_SQUARINGS = 8


ALL_PAIRS_AT = 4
MAX_DIFF_RANGE_LOG2 = 10


def row_max(x: Fx) -> Fx:
    """Maximum over the last dimension.

    Halving tournaments (one comparison round and one selection round per level) until at
    most 4 candidates remain, then all pairs of those compared in one batch: x_i is the
    maximum when it beats every other (ties broken by index), an AND of integer bits in
    2 rounds, then one selection round.  The last two levels thus cost one comparison pass
    instead of two, for 6 instead of 3 comparisons per row.
    """
    s = x.share
    # differences of masked logits: |a - b| < 470 (spread 170 + mask bias 300) < 2^10
    width = cmp_width(x.bits, MAX_DIFF_RANGE_LOG2)
    while s.shape[-1] > ALL_PAIRS_AT:
        n = s.shape[-1]
        h = n // 2
        a, b, rest = s[..., :h], s[..., h : 2 * h], s[..., 2 * h :]
        # a near-tie (|a - b| < 2^-12) may pick the smaller: the maximum is then low by at
        # most 2^-12 per level, well inside exp's tolerance; the all-pairs step stays exact
        # (fuzzy ties there could leave no winner)
        (a_lt_b,) = ltz_many([a - b], k=width, fuzz=max(0, x.bits - 12))
        (sel,) = mul_many([(b - a, a_lt_b)])
        s = torch.cat([a + sel, rest], dim=-1)
    n = s.shape[-1]
    if n == 1:
        return Fx(s, x.bits)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    diffs = torch.stack([s[..., i] - s[..., j] for i, j in pairs])  # (pairs, ...)
    (lt,) = ltz_many([diffs], k=width)  # [x_i < x_j]
    one = torch.ones_like(lt[0]) if comm.get().get_rank() == 0 else torch.zeros_like(lt[0])
    wins = []
    for i in range(n):  # x_i wins iff x_i >= x_j for j > i and x_i > x_j for j < i
        bits = [one - lt[k] if a == i else lt[k] for k, (a, b) in enumerate(pairs) if i in (a, b)]
        wins.append(bits)
    while len(wins[0]) > 1:  # AND-tree over each candidate's bits, all candidates together
        lefts, rights, carry = [], [], []
        for bits in wins:
            half = len(bits) // 2
            lefts += bits[:half]
            rights += bits[half : 2 * half]
            carry.append(bits[2 * half :])
        prods = mul_many(list(zip(lefts, rights, strict=True)))
        out, k = [], 0
        for bits, extra in zip(wins, carry, strict=True):
            half = len(bits) // 2
            out.append(prods[k : k + half] + extra)
            k += half
        wins = out
    (picked,) = mul_many([(torch.stack([s[..., i] for i in range(n)]), torch.stack([w[0] for w in wins]))])
    return Fx(picked.sum(0).unsqueeze(-1), x.bits)


def softmax(scores: Fx, key_mask: torch.Tensor, length: int) -> Fx:
    """Softmax over the last dimension with padded keys excluded.

    ``key_mask`` holds this party's shares of the integer 0/1 key mask, broadcastable to
    ``scores``.  Formula: z = scores + 1000 (mask - 1); p = exp(z - max z) / sum exp(z - max z)
    with our exp (8 squarings) and reciprocal (row sums lie in [1, length]).
    Valid range: the spread of real logits within a row at most 170 (real MiniLM: 132):
    real positions then stay in exp's range [-475, 0] and padded keys at or below -130, where
    exp reads as exactly 0 at 16 fractional bits: padded keys get zero attention.
    Error: below 2e-5 absolute per probability (tests).
    """
    bias = key_mask * int(MASK_BIAS * (1 << F))
    if comm.get().get_rank() == 0:
        bias = bias - int(MASK_BIAS * (1 << F))
    z = Fx(scores.share + bias, F)
    m = row_max(z)
    e = exp_neg(z - m, out_bits=F, squarings=SOFTMAX_SQUARINGS)
    total = Fx(e.share.sum(-1, keepdim=True), F)
    inv = reciprocal(total, upper=float(length))
    (p,) = mul([(e, inv, F)])
    return p


# ------------------------------------------------------------------------------------------
# layer norm


def layer_norm(x: Fx, gamma: Fx, beta: Fx, eps: float, mean: Fx | None = None) -> Fx:
    """gamma * (x - mean) / sqrt(var + eps) + beta over the last dimension.

    Means divide exactly by the (public) width; the variance is kept at 24 fractional bits
    for the inverse square root (valid for variances in [0.001, 1024]: real MiniLM reaches
    0.0021 to 129).  Rounds: 4 + the inverse square root's.
    """
    n = x.share.shape[-1]
    if mean is None:
        (mean,) = truncate_by([(Fx(x.share.sum(-1, keepdim=True), F), n, F)])
    d = x - mean
    d2_raw, dg_raw = mul_many([(d.share, d.share), (d.share, gamma.share)])
    # var at G bits: sum of raw squares (2F bits) / (n * 2^(2F - G)); d*gamma back to F bits
    var, dg = truncate_by([(Fx(d2_raw.sum(-1, keepdim=True), 2 * F), n, G), (Fx(dg_raw, 2 * F), 1, F)])
    y = inv_sqrt(var.add_public(eps), lo=-10, hi=10)
    (out,) = mul([(dg, y, F)])
    return out + beta


def truncate_by(items: list[tuple[Fx, int, int]]) -> list[Fx]:
    """(x, n, bits): x / n rescaled to ``bits`` fractional bits, exactly, in one round."""
    outs = truncate_shares_many([(x.share, n << (x.bits - bits)) for x, n, bits in items])
    return [Fx(s, bits) for s, (_, _, bits) in zip(outs, items, strict=True)]
