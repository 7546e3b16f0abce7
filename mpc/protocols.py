"""Share arithmetic of our own, on top of CrypTen's additive shares and its TTP dealer.

Protocols here (each with its security argument in its docstring): exact truncation (which can
also hand back the square of its result for free), batched Beaver products and products with a
reused weight mask; ``dealer_batch`` sends the dealer requests of one step in one round trip.
The dealer-assisted comparison lives in ``mpc.comparison``.  The two oldest:

* **Exact truncation** (``truncate_``): dividing a shared fixed-point value by a public integer
  ``d``.  CrypTen's 2-party truncation divides each share locally and is wrong by about 2^48 ring
  units (2^32 in value) with probability ~|x|/2^63 (CrypTen issue #347; shared/FACTS.md); its
  n-party protocol drops the eta term and keeps the same failure mode.  Ours is dealer-assisted
  and never wraps:

    1. the dealer draws r uniform in Z_2^64 and deals shares of r, of its top bit r_msb, and of
       floor(r_u / d) (r_u: r read as unsigned);
    2. the parties open c = x + K + r, where K = d * floor(2^62 / d) makes x' = x + K lie in
       [0, 2^63) for every |x| < 2^62;
    3. since x' has top bit 0, x' + r wraps mod 2^64 exactly when r_msb = 1 and c_msb = 0, so
       the wrap bit w = r_msb * (1 - c_msb) is linear in the shared r_msb;
    4. x / d = floor(c_u / d) - floor(r_u / d) + w * floor(2^64 / d) - K / d, correct up to +1
       in the last place.

  Security: c is x' plus a uniform ring element, so c is uniform and independent of x; the
  dealer learns nothing (it only sends).  Cost: one round, one ring element per value and party;
  the dealer sends two ring elements per value to party 0 (the others derive theirs from seeds
  shared with the dealer).

* **Batched Beaver products** (``mul_many``): several independent products opened in one
  exchange (one round instead of one per product).  Security is Beaver's: each opened value is
  an input minus a fresh uniform mask from the dealer.

Everything here is switched on per session with ``exact_truncation()``; CrypTen's stock
behaviour (the "vanilla" baseline) is unchanged outside it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from mpc._crypten import ArithmeticSharedTensor, comm, ttp_provider
from mpc.meter import tag

_MASK64 = (1 << 64) - 1
_STATE: dict = {"exact": False}


def plain(t):
    """A share tensor as a plain torch int64 tensor (CrypTen wraps CUDA ones in CUDALongTensor)."""
    return t._tensor if hasattr(t, "_tensor") and not torch.is_tensor(t) else t


def ring_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b in Z_2^64 (torch.matmul broadcasting, both operands at least 2-D).

    Neither device has a fast int64 matrix product (CPU: torch's int64 matmul runs no BLAS,
    ~0.6 G multiply-adds per second here, 35x slower than float64), so both go through exact
    float64 products of small limbs: ``float_ring_matmul`` on CPU (six products of signed
    ~21-bit limbs), ``limb_matmul`` on CUDA (ten products of 16-bit limbs, the path measured
    on the H200).
    """
    if a.is_cuda:
        return limb_matmul(a, b)
    return float_ring_matmul(a, b)


def ring_matmul_sum(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """sum_k a_k @ b_k in Z_2^64, as one product of the operands stacked along the inner
    dimension when their batch shapes agree (one set of limb products instead of several)."""
    a0, b0 = pairs[0]
    if all(a.shape[:-1] == a0.shape[:-1] and b.shape[:-2] == b0.shape[:-2]
           and b.shape[-1] == b0.shape[-1] for a, b in pairs):  # fmt: skip
        return ring_matmul(torch.cat([a for a, _ in pairs], -1), torch.cat([b for _, b in pairs], -2))
    out = ring_matmul(a0, b0)
    for a, b in pairs[1:]:
        out = out + ring_matmul(a, b)
    return out


_LIMB_K = 1536  # inner-dimension chunk of float_ring_matmul: every partial sum stays below 2^53


def _balanced_limbs(v: torch.Tensor, widths: tuple[int, int]) -> list[torch.Tensor]:
    """v = d0 + 2^w0 d1 + 2^(w0+w1) d2 (mod 2^64) with signed digits |d_i| <= 2^(w_i - 1)
    (the top one |d2| <= 2^(63 - w0 - w1) + 1), as float64 tensors."""
    out = []
    for w in widths:
        half = 1 << (w - 1)
        d = v + half
        d &= (1 << w) - 1
        d -= half
        out.append(d.double())
        v = v - d
        v >>= w  # exact: the low w bits of v - d are 0 (mod 2^64 if v - d wraps)
    out.append(v.double())
    return out


def float_ring_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b mod 2^64 from six exact float64 (BLAS) matrix products.

    a is split into signed digits at bits 0, 22, 43 (|a0| <= 2^21, |a1|, |a2| <= 2^20 + 1),
    b at bits 0, 21, 42 (|b0|, |b1| <= 2^20, |b2| <= 2^21 + 1).  The products a_i b_j with
    offset 22i' + 21j' >= 64 vanish mod 2^64, which leaves a0b0, a0b1, a0b2, a1b0, a1b1 and
    a2b0, each entry at most 2^42 (1 + 2^-20) in magnitude.  With at most _LIMB_K = 1536
    terms per inner product every partial sum is an integer below 2^53, so each float64
    product is exact whatever order BLAS adds in; longer inner dimensions are cut into
    chunks whose int64 results are added mod 2^64.  The products for one b-digit share one
    GEMM call (a's digits stacked along the rows).
    """
    if a.dim() < 2 or b.dim() < 2:
        return a.matmul(b)
    k = a.shape[-1]
    if k > _LIMB_K:
        out = float_ring_matmul(a[..., :_LIMB_K], b[..., :_LIMB_K, :])
        for lo in range(_LIMB_K, k, _LIMB_K):
            out += float_ring_matmul(a[..., lo : lo + _LIMB_K], b[..., lo : lo + _LIMB_K, :])
        return out
    m = a.shape[-2]
    a0, a1, a2 = _balanced_limbs(a, (22, 21))
    b0, b1, b2 = _balanced_limbs(b, (21, 21))
    p0 = torch.cat([a0, a1, a2], -2).matmul(b0)  # a0b0 (<< 0), a1b0 (<< 22), a2b0 (<< 43)
    p1 = torch.cat([a0, a1], -2).matmul(b1)  # a0b1 (<< 21), a1b1 (<< 43)
    p2 = a0.matmul(b2)  # a0b2 (<< 42)
    top = p0[..., 2 * m :, :] + p1[..., m:, :]  # both << 43; |sum| <= 2 * 1536 * 2^41 < 2^53
    out = p0[..., :m, :].long()
    out += p0[..., m : 2 * m, :].long() * (1 << 22)  # int64 products wrap mod 2^64
    out += p1[..., :m, :].long() * (1 << 21)
    out += p2.long() * (1 << 42)
    out += top.long() * (1 << 43)
    return out


def limb_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b mod 2^64 from ten float64 products of unsigned 16-bit limbs (CUDA).

    Each limb product < 2^32; sums over up to 2^21 terms stay below 2^53, so every float64
    result is exact; recombined mod 2^64."""
    if a.shape[-1] > (1 << 21):
        raise ValueError("inner dimension too large for exact float64 limb products")
    la = [((a >> (16 * i)) & 0xFFFF).double() for i in range(4)]
    lb = [((b >> (16 * j)) & 0xFFFF).double() for j in range(4)]
    out = la[0].matmul(lb[0]).long()
    for i in range(4):
        for j in range(4 - i):
            if i or j:
                out = out + (la[i].matmul(lb[j]).long() << (16 * (i + j)))
    return out


def _signed(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >= 1 << 63 else v


def floor_div_unsigned(t: torch.Tensor, d: int) -> torch.Tensor:
    """floor(t_u / d) for int64 ``t`` read as unsigned 64-bit, as int64 (exact)."""
    if d & (d - 1) == 0:  # power of two: logical shift, works on every device
        f = d.bit_length() - 1
        if f == 0:
            return t.clone()
        return (t >> f) & ((1 << (64 - f)) - 1)
    arr = t.detach().cpu().numpy().view(np.uint64) // np.uint64(d)
    return torch.from_numpy(arr.view(np.int64)).to(t.device)


def ring_random(size, gen, device) -> torch.Tensor:
    """The next uniform ring elements of ``gen``'s stream (a seed shared with the dealer or a peer)."""
    from crypten.common.rng import generate_random_ring_element

    return plain(generate_random_ring_element(size, generator=gen, device=device))


# --------------------------------------------------------------------------------------------
# dealer side


def _dealer_trunc(self, size, d, square=False):  # runs inside CrypTen's TTPServer (the dealer)
    r = plain(self._get_additive_PRSS(size))
    msb = (r < 0).long()
    rq = floor_div_unsigned(r, d)
    rows = [msb, rq]
    if square:  # the two candidates s of the result's secret part (by the public c_msb), squared
        s0 = msb * _signed((1 << 64) // d) - rq
        rows += [s0 * s0, rq * rq]
    return torch.stack([v - plain(self._get_additive_PRSS(size, remove_rank=True)) for v in rows])


def _dealer_mtriple(self, size0, size1):  # dealer: a matmul triple, c = a @ b in the ring
    a = plain(self._get_additive_PRSS(size0))
    b = plain(self._get_additive_PRSS(size1))
    c = ring_matmul(a, b)
    return c - plain(self._get_additive_PRSS(c.size(), remove_rank=True))


def _dealer_wmask(self, size, key):
    if not hasattr(self, "_smt_masks"):
        self._smt_masks = {}
    self._smt_masks[key] = self._get_additive_PRSS(size)
    return torch.zeros(1, dtype=torch.long)


def _dealer_wtriple(self, size, key):
    a = self._get_additive_PRSS(size)
    c = ring_matmul(plain(a), plain(self._smt_masks[key]))
    return c - plain(self._get_additive_PRSS(c.size(), remove_rank=True))


def _dealer_wfree(self, key):
    self._smt_masks.pop(key, None)
    return torch.zeros(1, dtype=torch.long)


def _dealer_batch(self, requests):  # dealer: several requests of party 0 in one message
    return torch.cat([plain(getattr(self, name)(*args)).reshape(-1) for name, args in requests])


def _dealer_functions() -> dict:
    from mpc import comparison, model_session

    return {
        "smt_status": model_session.dealer_status,
        "smt_batch": _dealer_batch,
        "smt_trunc": _dealer_trunc,
        "smt_mtriple": _dealer_mtriple,
        "smt_wmask": _dealer_wmask,
        "smt_wtriple": _dealer_wtriple,
        "smt_wfree": _dealer_wfree,
        "smt_cmp_prep": comparison.dealer_prep,
        "smt_cmp_answer": comparison.dealer_answer,
    }


def install_dealer_functions() -> None:
    """Teach CrypTen's TTP server our dealer functions (call in the dealer process)."""
    for name, fn in _dealer_functions().items():
        setattr(ttp_provider.TTPServer, name, fn)


# --------------------------------------------------------------------------------------------
# party side


def dealer_batch(device, requests: Sequence[tuple[str, tuple, tuple]]) -> list[torch.Tensor]:
    """Party 0: several dealer requests ``(name, args, result shape)`` in one round trip.

    The dealer serves them in order, exactly as if sent one by one, so the other parties'
    seed-derived shares stay in step."""
    if not requests:
        return []
    client = ttp_provider.TTPClient.get()
    flat = plain(client.ttp_request("smt_batch", device, [(name, args) for name, args, _ in requests]))
    out, offset = [], 0
    for *_, shape in requests:
        n = math.prod(shape)
        out.append(flat[offset : offset + n].reshape(shape))
        offset += n
    return out


def truncate_shares_many(items: Sequence[tuple[torch.Tensor, int]], *,
                         squares: Sequence[bool] | None = None) -> list:  # fmt: skip
    """Exact truncation of several share tensors, each by its public divisor, in one round.

    With ``squares[i]`` the i-th result comes as ``(y, y^2 raw)``: the square of the truncated
    value for free, without a Beaver opening.  After the opening, y = P + s with P public
    (from c) and s = r_msb (1 - c_msb) floor(2^64/d) - floor(r/d) secret, one of two values
    the dealer knows (s0 for c_msb = 0, s1 = -floor(r/d) for c_msb = 1).  The dealer deals
    shares of s0^2 and s1^2 as well; the parties pick by the public c_msb and compute
    y^2 = P^2 + 2 P s + s^2 locally.  What is opened is unchanged (c, uniform); the extra
    shares are uniform to each party.  Saves one round and one opening per squaring chain step.
    """
    rank = comm.get().get_rank()
    for _, d in items:
        if d < 1:
            raise ValueError(f"truncation divisor must be a positive integer, got {d}")
    if not items:
        return []
    sq = list(squares) if squares is not None else [False] * len(items)
    device = items[0][0].device
    gen = ttp_provider.TTPClient.get().get_generator(device=device)
    draws: list[list[Any]] = []
    for (shares, _d), want_sq in zip(items, sq, strict=True):  # the dealer's order: r, then rows
        r = ring_random(shares.size(), gen, device)
        rows = 4 if want_sq else 2
        draws.append([r] + ([None] * rows if rank == 0 else
                            [ring_random(shares.size(), gen, device) for _ in range(rows)]))  # fmt: skip
    if rank == 0:
        dealt = dealer_batch(device, [("smt_trunc", (sh.size(), d, want), (4 if want else 2, *sh.size()))
                                      for (sh, d), want in zip(items, sq, strict=True)])  # fmt: skip
        draws = [[dr[0], *rows] for dr, rows in zip(draws, dealt, strict=True)]
    prepared = []
    for (shares, d), dr in zip(items, draws, strict=True):
        k = d * ((1 << 62) // d)
        masked = shares + dr[0]
        if rank == 0:
            masked = masked + _signed(k)
        prepared.append((d, k, dr, masked))
    with tag("truncation"):
        opened = comm.get().all_reduce([p[-1] for p in prepared], batched=True)
    out: list = []
    for (d, k, dr, _), c, want in zip(prepared, opened, sq, strict=True):
        msb, rq = dr[1], dr[2]
        c_msb = (c < 0).long()
        secret = msb * (1 - c_msb) * _signed((1 << 64) // d) - rq
        public = floor_div_unsigned(c, d) - _signed(k // d)
        res = secret + public if rank == 0 else secret
        if not want:
            out.append(res)
            continue
        s_sq = torch.where(c_msb.bool(), dr[4], dr[3])
        y_sq = s_sq + 2 * public * secret
        if rank == 0:
            y_sq = y_sq + public * public
        out.append((res, y_sq))
    return out


def truncate_shares_(shares: torch.Tensor, d: int) -> torch.Tensor:
    """Exact truncation of this party's share tensor by public ``d`` (see module docstring)."""
    if d == 1:
        return shares
    return truncate_shares_many([(shares, d)])[0]


def truncate_(x: ArithmeticSharedTensor, d: int) -> ArithmeticSharedTensor:
    x.share = truncate_shares_(x.share, d)
    return x


_original_div_ = ArithmeticSharedTensor.div_


def _div_(self, y):
    if _STATE["exact"]:
        if isinstance(y, float) and y.is_integer():
            y = int(y)
        if isinstance(y, int):
            return truncate_(self, y)
    return _original_div_(self, y)


ArithmeticSharedTensor.div_ = _div_


@contextlib.contextmanager
def exact_truncation(enabled: bool = True) -> Iterator[None]:
    """Within the block, every division of a share by a public integer is exact (dealer-assisted)."""
    before = _STATE["exact"]
    _STATE["exact"] = enabled
    try:
        yield
    finally:
        _STATE["exact"] = before


def exact_truncation_enabled() -> bool:
    return _STATE["exact"]


# --------------------------------------------------------------------------------------------
# batched products


def mul_many(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """Elementwise products of share tensors (broadcasting), all opened in one round.

    Raw products: the scale of a result is the product of its operands' scales; the caller
    truncates.  Squares (the same tensor twice) use the dealer's square pairs and open one
    tensor instead of two.  All Beaver triples come from the dealer in one request.
    """
    if not pairs:
        return []
    device = pairs[0][0].device
    gen = ttp_provider.TTPClient.get().get_generator(device=device)
    rank0 = comm.get().get_rank() == 0
    plans: list[list] = []
    requests: list[tuple[str, tuple, tuple]] = []
    for x, y in pairs:  # draws in the dealer's order: (r, r^2) or (a, b, c) per request
        if x is y:
            r = ring_random(x.size(), gen, device)
            if rank0:
                requests.append(("square", (x.size(),), tuple(x.size())))
            plans.append(["sq", r, None if rank0 else ring_random(x.size(), gen, device)])
        else:
            a = ring_random(x.size(), gen, device)
            b = ring_random(y.size(), gen, device)
            c_size = tuple(torch.broadcast_shapes(x.size(), y.size()))
            if rank0:
                requests.append(("additive", (x.size(), y.size(), "mul"), c_size))
            plans.append(["mul", a, b, None if rank0 else ring_random(c_size, gen, device)])
    if rank0:
        for plan, dealt in zip(plans, dealer_batch(device, requests), strict=True):
            plan[-1] = dealt
    opened: list[torch.Tensor] = []
    for (x, y), plan in zip(pairs, plans, strict=True):
        if plan[0] == "sq":
            opened.append(x - plan[1])
        else:
            opened += [x - plan[1], y - plan[2]]
    values = comm.get().all_reduce(opened, batched=True)
    out, i = [], 0
    for plan in plans:
        if plan[0] == "sq":
            _, r, r2 = plan
            eps = values[i]
            i += 1
            z = r2 + 2 * r * eps
            if rank0:
                z = z + eps * eps
        else:
            _, a, b, c = plan
            eps, delta = values[i], values[i + 1]
            i += 2
            z = c + eps * b + a * delta
            if rank0:
                z = z + eps * delta
        out.append(z)
    return out


def matmul_raw(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Beaver matrix product of two share tensors (torch.matmul broadcasting), not rescaled.

    Opens eps = X - a and delta = Y - b; party i computes z_i = c_i + eps @ b_i + x_i @ delta
    (sum: a@b + (X - a)@b + X@(Y - b) = X@Y): two products per party, fused into one
    (``ring_matmul_sum``), where the textbook form needs three at party 0.  The triple comes
    from our dealer function (``smt_mtriple``: c = a @ b with the same fast ring product).
    """
    device = x.device
    gen = ttp_provider.TTPClient.get().get_generator(device=device)
    a = ring_random(x.size(), gen, device)
    b = ring_random(y.size(), gen, device)
    c_size = (*torch.broadcast_shapes(x.shape[:-2], y.shape[:-2]), x.shape[-2], y.shape[-1])
    if comm.get().get_rank() == 0:
        c = plain(ttp_provider.TTPClient.get().ttp_request("smt_mtriple", device, x.size(), y.size()))
    else:
        c = ring_random(c_size, gen, device)
    eps, delta = comm.get().all_reduce([x - a, y - b], batched=True)
    return c + ring_matmul_sum([(eps, b), (x, delta)])


class ReusedWeightMask:
    """Products X_i @ W for many row blocks X_i with one weight mask b, opened once.

    The dealer deals shares of a uniform b once, and for every block a fresh uniform a_i with
    shares of c_i = a_i @ b.  The parties open delta = W - b once and eps_i = X_i - a_i per
    block; X_i @ W = c_i + eps_i @ b + a_i @ delta + eps_i @ delta.

    Why the reuse reveals nothing more: every opened value is a secret minus an independent
    uniform mask (b once, for the one value W; each a_i once), exactly the view of a single
    Beaver product of the stacked blocks [X_1; X_2; ...] @ W.  This holds for any number of
    blocks, in one inference or across the inferences of a persistent model session
    (mpc/model_session.py), *as long as W is the same secret*: with a second secret W', the
    openings W - b and W' - b would reveal W - W'.  So a mask is bound to the one share tensor
    it was opened for, and ``matmul_raw`` refuses any other (``MaskReuseError``); a new model
    session (new weights, or a renewal) draws a new b.

    It also keeps memory bounded by the block size (a one-hot block is rows x vocabulary)
    instead of the whole batch.
    """

    _next = 0

    def __init__(self, w: torch.Tensor):
        from crypten.common.rng import generate_random_ring_element

        ReusedWeightMask._next += 1
        self.key = ReusedWeightMask._next
        self.client = ttp_provider.TTPClient.get()
        self.device = w.device
        self.gen = self.client.get_generator(device=w.device)
        self.rank0 = comm.get().get_rank() == 0
        self.weight = w  # the one secret this mask may be used with
        self.uses = 0
        if self.rank0:
            self.client.ttp_request("smt_wmask", w.device, w.size(), self.key)
        self.b = plain(generate_random_ring_element(w.size(), generator=self.gen, device=w.device))
        self.delta = comm.get().all_reduce(w - self.b)

    def matmul_raw(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x @ w for the weight share ``w`` this mask was opened for (anything else raises)."""
        from crypten.common.rng import generate_random_ring_element

        if w is not self.weight:
            raise MaskReuseError("a weight mask was offered another weight tensor than the one it was opened for; "
                                 "reusing it would reveal the difference of the two secrets")  # fmt: skip
        self.uses += 1
        a = plain(generate_random_ring_element(x.size(), generator=self.gen, device=self.device))
        if self.rank0:
            c = plain(self.client.ttp_request("smt_wtriple", self.device, x.size(), self.key))
        else:
            size = (x.size(0), self.b.size(1))
            c = plain(generate_random_ring_element(size, generator=self.gen, device=self.device))
        eps = comm.get().all_reduce(x - a)
        return c + ring_matmul_sum([(eps, self.b), (x, self.delta)])  # as in matmul_raw

    def close(self) -> None:
        if self.rank0:
            self.client.ttp_request("smt_wfree", self.device, self.key)


class MaskReuseError(RuntimeError):
    """A weight mask was about to be used with another secret than the one it masks."""


def reveal(shares: torch.Tensor, bits: int, dst: int | None = 0) -> torch.Tensor | None:
    """Open a fixed-point share tensor to party ``dst`` (all parties if None), as float64.

    Decodes with a plain division: CrypTen's decoder divides negative values by 2^16 - 1 and is
    off by up to 1.0 on many negative values of magnitude over ~100 (crypten/encoder.py).
    """
    shares = shares.cpu()  # gloo reduces CPU tensors only
    if dst is None:
        total = comm.get().all_reduce(shares)
    else:
        total = comm.get().reduce(shares, dst)
        if comm.get().get_rank() != dst:
            return None
    return total.double() / float(1 << bits)
