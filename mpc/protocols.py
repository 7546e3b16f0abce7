"""Share arithmetic of our own, on top of CrypTen's additive shares and its TTP dealer.

Protocols here (each with its security argument in its docstring): exact truncation (which can
also hand back the square of its result for free), batched Beaver products, products with a
reused weight mask, and the dealer-assisted comparison ``ltz_many``; ``dealer_batch`` sends the
dealer requests of one step in one round trip.  The two oldest:

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

from mpc._crypten import ArithmeticSharedTensor, comm, crypten, ttp_provider
from mpc.meter import tag

_MASK64 = (1 << 64) - 1
_STATE: dict = {"exact": False, "cmp": "dealer"}


def plain(t):
    """A share tensor as a plain torch int64 tensor (CrypTen wraps CUDA ones in CUDALongTensor)."""
    return t._tensor if hasattr(t, "_tensor") and not torch.is_tensor(t) else t


def ring_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b in Z_2^64 (torch.matmul broadcasting).

    CPU: torch's int64 matmul.  CUDA has no int64 matmul: split each operand into four
    unsigned 16-bit limbs and use float64 matmuls (each limb product < 2^32, sums over up to
    2^21 terms stay below 2^53, so every float64 result is exact), then recombine mod 2^64.
    """
    if not a.is_cuda:
        return a.matmul(b)
    return limb_matmul(a, b)


def limb_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
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
        r = _ring_random(shares.size(), gen, device)
        rows = 4 if want_sq else 2
        draws.append([r] + ([None] * rows if rank == 0 else
                            [_ring_random(shares.size(), gen, device) for _ in range(rows)]))  # fmt: skip
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
            r = _ring_random(x.size(), gen, device)
            if rank0:
                requests.append(("square", (x.size(),), tuple(x.size())))
            plans.append(["sq", r, None if rank0 else _ring_random(x.size(), gen, device)])
        else:
            a = _ring_random(x.size(), gen, device)
            b = _ring_random(y.size(), gen, device)
            c_size = tuple(torch.broadcast_shapes(x.size(), y.size()))
            if rank0:
                requests.append(("additive", (x.size(), y.size(), "mul"), c_size))
            plans.append(["mul", a, b, None if rank0 else _ring_random(c_size, gen, device)])
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
    """Beaver matrix product of two share tensors (torch.matmul broadcasting), not rescaled."""
    provider = crypten.mpc.get_default_provider()
    a, b, c = provider.generate_additive_triple(x.size(), y.size(), "matmul", device=x.device)
    a, b, c = plain(a.share), plain(b.share), plain(c.share)
    eps, delta = comm.get().all_reduce([x - a, y - b], batched=True)
    z = c + ring_matmul(eps, b) + ring_matmul(a, delta)
    if comm.get().get_rank() == 0:
        z = z + ring_matmul(eps, delta)
    return z


class ReusedWeightMask:
    """Products X_i @ W for many row blocks X_i with one weight mask b, opened once.

    The dealer deals shares of a uniform b once, and for every block a fresh uniform a_i with
    shares of c_i = a_i @ b.  The parties open delta = W - b once and eps_i = X_i - a_i per
    block; X_i @ W = c_i + eps_i @ b + a_i @ delta + eps_i @ delta.
    Why the reuse reveals nothing more: every opened value is a secret minus an independent
    uniform mask (b once, for the one value W; each a_i once), exactly the view of a single
    Beaver product of the stacked blocks.  It keeps memory bounded by the block size (a
    one-hot block is rows x vocabulary) instead of the whole batch.
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
        if self.rank0:
            self.client.ttp_request("smt_wmask", w.device, w.size(), self.key)
        self.b = plain(generate_random_ring_element(w.size(), generator=self.gen, device=w.device))
        self.delta = comm.get().all_reduce(w - self.b)

    def matmul_raw(self, x: torch.Tensor) -> torch.Tensor:
        from crypten.common.rng import generate_random_ring_element

        a = plain(generate_random_ring_element(x.size(), generator=self.gen, device=self.device))
        if self.rank0:
            c = plain(self.client.ttp_request("smt_wtriple", self.device, x.size(), self.key))
        else:
            size = (x.size(0), self.b.size(1))
            c = plain(generate_random_ring_element(size, generator=self.gen, device=self.device))
        eps = comm.get().all_reduce(x - a)
        z = c + ring_matmul(eps, self.b) + ring_matmul(a, self.delta)
        if self.rank0:
            z = z + ring_matmul(eps, self.delta)
        return z

    def close(self) -> None:
        if self.rank0:
            self.client.ttp_request("smt_wfree", self.device, self.key)


# --------------------------------------------------------------------------------------------
# dealer-assisted comparison

P_FIELD = 67  # prime field of the blinded comparison vectors; > 64 + 1, fits a byte
_CMP_OBSERVERS: list = []  # test hook: callables that see (opened c, this party's message to the dealer)


@contextlib.contextmanager
def observe_comparisons(fn) -> Iterator[None]:
    """Within the block, ``fn(c, d)`` sees every opened c and this party's vectors for the dealer
    (used by the tests that check both are masked)."""
    _CMP_OBSERVERS.append(fn)
    try:
        yield
    finally:
        _CMP_OBSERVERS.remove(fn)


def _ring_random(size, gen, device) -> torch.Tensor:
    from crypten.common.rng import generate_random_ring_element

    return plain(generate_random_ring_element(size, generator=gen, device=device))


def _field_random(size, gen, device) -> torch.Tensor:
    """Uniform elements of Z_67 as int16 (party i's share of the dealer's bit shares)."""
    return torch.randint(0, P_FIELD, size, generator=gen, device=device, dtype=torch.int16)


def _pack_bytes(t: torch.Tensor) -> torch.Tensor:
    """A uint8 tensor as int64 words (the dealer channel carries int64), 8 bytes per word."""
    flat = t.reshape(-1)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return flat.view(torch.int64)


def _unpack_bytes(words: torch.Tensor, shape) -> torch.Tensor:
    n = math.prod(shape)
    return words.reshape(-1).view(torch.uint8)[:n].reshape(shape)


def _dealer_cmp_prep(self, n, k, f=0):  # dealer: r (free, from seeds), Z_p shares of bits f..k-2
    r = plain(self._get_additive_PRSS((n,)))
    bits = _bits_of(r >> f, k - 1 - f)
    others = torch.zeros_like(bits)
    for g in self._get_generators(device=self.device)[1:]:
        others = others + _field_random((n, k - 1 - f), g, bits.device)
    if not hasattr(self, "_smt_cmp"):
        self._smt_cmp = []
    self._smt_cmp.append((r >> (k - 1)) & 1)  # the top bit of r mod 2^k, for the answer
    return _pack_bytes(((bits - others) % P_FIELD).to(torch.uint8))


def _dealer_cmp_answer(self, n, m):  # dealer: learns only beta' = beta XOR [r_hi > c_hi]
    ttp_group = comm.get().ttp_group
    total = torch.zeros((n, m), dtype=torch.int32)
    for src in range(comm.get().get_world_size()):
        buf = torch.empty((n, m), dtype=torch.uint8)
        torch.distributed.recv(buf, src=src, group=ttp_group)
        total += buf.to(torch.int32)
    beta_prime = ((total % P_FIELD) == 0).any(-1).long().to(self.device or "cpu")
    z = beta_prime ^ self._smt_cmp.pop(0)
    return z - plain(self._get_additive_PRSS((n,), remove_rank=True))


def _dealer_batch(self, requests):  # dealer: several requests of party 0 in one message
    return torch.cat([plain(getattr(self, name)(*args)).reshape(-1) for name, args in requests])


def _dealer_functions() -> dict:
    return {
        "smt_batch": _dealer_batch,
        "smt_trunc": _dealer_trunc,
        "smt_wmask": _dealer_wmask,
        "smt_wtriple": _dealer_wtriple,
        "smt_wfree": _dealer_wfree,
        "smt_cmp_prep": _dealer_cmp_prep,
        "smt_cmp_answer": _dealer_cmp_answer,
    }


def _bits_of(v: torch.Tensor, count: int) -> torch.Tensor:
    """Bits 0..count-1 of each int64 as int16, along a new last dimension."""
    if v.is_cuda:
        shifts = torch.arange(count, device=v.device)
        return ((v.unsqueeze(-1) >> shifts) & 1).to(torch.int16)
    raw = v.contiguous().numpy().view(np.uint8).reshape(-1, 8)  # little-endian bytes
    bits = np.unpackbits(raw, axis=1, bitorder="little")[:, :count]
    return torch.from_numpy(bits.astype(np.int16)).reshape(*v.shape, count)


@contextlib.contextmanager
def comparison_protocol(name: str) -> Iterator[None]:
    """``dealer`` (ours, default) or ``crypten`` (CrypTen's A2B sign test: the previous engine,
    kept as the measured "before" of ``smt bench --before``)."""
    if name not in ("dealer", "crypten"):
        raise ValueError(f"comparison protocol must be 'dealer' or 'crypten', got {name!r}")
    before = _STATE["cmp"]
    _STATE["cmp"] = name
    try:
        yield
    finally:
        _STATE["cmp"] = before


def ltz_many_crypten(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """CrypTen's comparison: arithmetic-to-binary conversion, a carry-lookahead adder over all
    64 bits, and a 1-bit binary-to-arithmetic conversion (~8 rounds, ~350 bytes per element)."""
    from crypten.mpc import MPCTensor

    flat = torch.cat([plain(t).reshape(-1) for t in tensors])
    if flat.is_cuda:  # CrypTen's binary circuits expect its CUDA wrapper
        from crypten.cuda import CUDALongTensor

        flat = CUDALongTensor(flat)
    bits = plain(MPCTensor.from_shares(flat, precision=0)._ltz()._tensor.share)
    return _split(bits, tensors)


def _split(flat: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    out, offset = [], 0
    for t in like:
        out.append(flat[offset : offset + t.numel()].reshape(t.shape))
        offset += t.numel()
    return out


_CMP_CHUNK = 1 << 18  # elements per chunk of the comparison vectors


def _blinded(a, c_hi, beta, s, rho, j, m, hi_mask) -> torch.Tensor:
    """This party's share of the blinded, rotated comparison vectors (ltz_many step 3)."""
    q = _bits_of(c_hi + beta, m)  # the public side: c_hi (beta = 0) or c_hi + 1 (beta = 1)
    w = torch.addcmul(a + j * q, q, a, value=-2)  # share of r_i XOR q_i
    suffix = w.sum(-1, keepdim=True) - w.cumsum(-1, dtype=torch.int16)
    sigma = (1 - 2 * beta).to(torch.int16).unsqueeze(-1)
    e = torch.addcmul(suffix + j, sigma, j * q - a)
    special = torch.nonzero(beta.bool() & (c_hi == hi_mask)).flatten()
    if special.numel():  # beta = 1, c_hi all ones: r_hi <= c_hi always; exactly one zero
        e[special] = 0
        if j:
            e[special, 1:] = 1
    d = torch.remainder(s * torch.remainder(e, P_FIELD), P_FIELD)
    idx = torch.arange(m, device=d.device).unsqueeze(0) + rho  # a uniform rotation per element
    idx = torch.where(idx >= m, idx - m, idx)
    return torch.gather(d, 1, idx).to(torch.uint8)


def _open_mod(masked: torch.Tensor, k: int) -> torch.Tensor:
    """Sum of every party's ``masked`` mod 2^k, in one exchange of k-bit values."""
    mask = -1 if k == 64 else (1 << k) - 1
    if k > 32:
        (c,) = comm.get().all_reduce([masked & mask], batched=True)
        return c & mask
    n = masked.numel()
    low = (masked & mask).to(torch.int32).cpu()  # the low 32 bits, as a bit pattern (gloo: CPU)
    if n % 2:
        low = torch.cat([low, low.new_zeros(1)])
    parts = comm.get().all_gather(low.view(torch.int64))  # int32 pairs travel as int64 words
    total = sum(p.view(torch.int32)[:n].long() & 0xFFFFFFFF for p in parts)
    return (total & mask).to(masked.device)


def ltz_many(tensors: Sequence[torch.Tensor], k: int = 64, fuzz: int = 0) -> list[torch.Tensor]:
    """Shares of the integer bits [x < 0] for several share tensors, in one comparison pass.

    Valid for |x| < 2^(k-1) - 2^fuzz ring units (callers pass k from the value's fractional
    bits and a bound on its magnitude); outside that the answer is the sign of x mod 2^k.
    With ``fuzz`` = f > 0 the low f bits are left out of the comparison (k-1-f entries per
    element instead of k-1): the answer is then exact for |x| >= 2^f and either bit below, for
    callers where a near-tie does not matter (a maximum, a threshold, GELU's branch: both of
    relu(x) - h(|x|) give x Phi(x) near 0).

    Protocol (dealer-assisted; SecureNN's PrivateCompare with the dealer as the helper that
    sees only a masked bit):

    1. the dealer draws r uniform in Z_2^64 (shares from the seeds it shares with each party,
       so it sends nothing for r) and deals shares over Z_67 of the low k-1 bits of r;
    2. the parties open c = x + r mod 2^k.  For |x| < 2^(k-1), x < 0 iff bit k-1 of
       (c - r) mod 2^k is set, i.e. c_top XOR r_top XOR borrow with borrow = [r_low > c_low]
       (the low k-1 bits);
    3. with randomness common to the computing parties only (CrypTen's "global" generator,
       unknown to the dealer) -- a bit beta, multipliers s_i in Z_67^*, a rotation rho -- each
       party computes its share of e_i = (bit i of the public side) - r_i + 1 + sum_{j>i}
       (r_j XOR public_j), which is 0 at exactly one i iff r_low > c_low (beta = 0), or the
       same test for r_low < c_low + 1 (beta = 1), multiplies by s_i, rotates by rho and sends
       it to the dealer;
    4. the dealer adds the shares: beta' = [some entry is 0] = beta XOR borrow.  It deals
       arithmetic shares of z = beta' XOR r_top; the parties finish locally:
       [x < 0] = v XOR z = v + (1 - 2v) z with v = c_top XOR beta public to them.

    Security (semi-honest, dealer not colluding with a party, as for all dealer randomness):
    c is x plus a uniform element of Z_2^k, so it is uniform whatever x is.  Each e_i lies in
    [0, k] < 67, so it is 0 only where stated; s_i e_i is uniform in Z_67^* where e_i != 0,
    and the uniform rotation puts the (at most one) zero at a uniform position: the dealer's
    view is a function of beta' alone, a uniform bit (beta is uniform and hidden from it).
    The parties receive only uniform shares.  Cost: 3 rounds (open c; to the dealer; back);
    per element and party 4 bytes for c (8 if k > 32) plus k-1-fuzz bytes to the dealer; the
    dealer sends party 0 k-1-fuzz bytes and one ring element per element (CrypTen's sign test:
    ~8 rounds and ~350 bytes per element).  Its vectors are built in chunks of _CMP_CHUNK
    elements to bound memory.
    """
    from mpc.meter import current

    if not 2 <= k <= 64 or not 0 <= fuzz < k - 1:
        raise ValueError(f"comparison width k must be in [2, 64] and fuzz in [0, k - 2], got {k}, {fuzz}")
    if _STATE["cmp"] == "crypten":
        return ltz_many_crypten(tensors)
    flat = torch.cat([plain(t).reshape(-1) for t in tensors])
    n, device = flat.numel(), flat.device
    rank = comm.get().get_rank()
    client = ttp_provider.TTPClient.get()
    gen = client.get_generator(device=device)
    kl = k - 1
    m = kl - fuzz  # compared bits: fuzz .. k-2
    # 1. correlated randomness: r from seeds, Z_p shares of bits fuzz..k-2 (int16 from here on)
    r = _ring_random((n,), gen, device)
    if rank == 0:
        prep = plain(client.ttp_request("smt_cmp_prep", device, n, k, fuzz))
        a = _unpack_bytes(prep, (n, m)).to(device)  # uint8; int16 per chunk below
    else:
        a = _field_random((n, m), gen, device)
    # 2. open c = x + r mod 2^k (k <= 32: four bytes per element instead of eight)
    with tag("comparison"):
        c = _open_mod(flat + r, k)
    c_top = (c >> kl) & 1
    hi_mask = (1 << m) - 1 if m < 63 else (1 << 63) - 1
    c_hi = (c >> fuzz) & hi_mask
    betas: list[torch.Tensor] = []
    # 3. blinded comparison vectors: e = suffix + j + sigma (j q - a), sigma = 1 - 2 beta,
    #    computed in chunks so memory stays bounded (n x m int16 temporaries)
    g = crypten.generators["global"][device]
    j = 1 if rank == 0 else 0
    parts = []
    for lo in range(0, n, _CMP_CHUNK):
        hi = min(n, lo + _CMP_CHUNK)
        beta = torch.randint(0, 2, (hi - lo,), generator=g, device=device)
        s = torch.randint(1, P_FIELD, (hi - lo, m), generator=g, device=device, dtype=torch.int16)
        rho = torch.randint(0, m, (hi - lo, 1), generator=g, device=device)
        betas.append(beta)
        parts.append(_blinded(a[lo:hi].to(torch.int16), c_hi[lo:hi], beta, s, rho, j, m, hi_mask))
    d = torch.cat(parts).cpu()
    beta = torch.cat(betas)
    for fn in _CMP_OBSERVERS:
        fn(c, d)
    # 4. the dealer's masked answer
    ttp_rank = comm.get().get_ttp_rank()
    if rank == 0:
        message = {"function": "smt_cmp_answer", "device": str(device), "args": (n, m), "kwargs": {}}
        comm.get().send_obj(message, ttp_rank, client.ttp_group)
        torch.distributed.send(d, dst=ttp_rank, group=client.ttp_group)
        size = comm.get().recv_obj(ttp_rank, client.ttp_group)
        z = torch.empty(size, dtype=torch.long, device=device)
        comm.get().broadcast(z, ttp_rank, client.comm_group)
    else:
        torch.distributed.send(d, dst=ttp_rank, group=client.ttp_group)
        z = _ring_random((n,), gen, device)
    meter = current()
    if meter is not None:
        with tag("comparison"):
            meter.add(rounds=2, nbytes=d.numel())
    v = c_top ^ beta
    bits = (1 - 2 * v) * plain(z)
    if rank == 0:
        bits = bits + v
    return _split(bits, tensors)


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
