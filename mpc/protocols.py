"""Share arithmetic of our own, on top of CrypTen's additive shares and its TTP dealer.

Two protocols live here:

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
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from mpc._crypten import ArithmeticSharedTensor, comm, crypten, ttp_provider
from mpc.meter import tag

_MASK64 = (1 << 64) - 1
_STATE = {"exact": False}


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


def _dealer_trunc(self, size, d):  # runs inside CrypTen's TTPServer (the dealer process)
    r = plain(self._get_additive_PRSS(size))
    msb = (r < 0).long()
    rq = floor_div_unsigned(r, d)
    msb_others = plain(self._get_additive_PRSS(size, remove_rank=True))
    rq_others = plain(self._get_additive_PRSS(size, remove_rank=True))
    return torch.stack([msb - msb_others, rq - rq_others])


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
    ttp_provider.TTPServer.smt_trunc = _dealer_trunc
    ttp_provider.TTPServer.smt_wmask = _dealer_wmask
    ttp_provider.TTPServer.smt_wtriple = _dealer_wtriple
    ttp_provider.TTPServer.smt_wfree = _dealer_wfree


# --------------------------------------------------------------------------------------------
# party side


def _trunc_randomness(size, d, device):
    client = ttp_provider.TTPClient.get()
    gen = client.get_generator(device=device)
    from crypten.common.rng import generate_random_ring_element

    r = plain(generate_random_ring_element(size, generator=gen, device=device))
    if comm.get().get_rank() == 0:
        both = plain(client.ttp_request("smt_trunc", device, size, d))
        msb, rq = both[0], both[1]
    else:
        msb = plain(generate_random_ring_element(size, generator=gen, device=device))
        rq = plain(generate_random_ring_element(size, generator=gen, device=device))
    return r, msb, rq


def truncate_shares_many(items: Sequence[tuple[torch.Tensor, int]]) -> list[torch.Tensor]:
    """Exact truncation of several share tensors, each by its public divisor, in one round."""
    rank = comm.get().get_rank()
    prepared = []
    for shares, d in items:
        if d < 1:
            raise ValueError(f"truncation divisor must be a positive integer, got {d}")
        k = d * ((1 << 62) // d)
        r, msb, rq = _trunc_randomness(shares.size(), d, shares.device)
        masked = shares + r
        if rank == 0:
            masked = masked + _signed(k)
        prepared.append((d, k, msb, rq, masked))
    with tag("truncation"):
        opened = comm.get().all_reduce([m for *_, m in prepared], batched=True)
    out = []
    for (d, k, msb, rq, _), c in zip(prepared, opened, strict=True):
        c_msb = (c < 0).long()
        res = msb * (1 - c_msb) * _signed((1 << 64) // d) - rq
        if rank == 0:
            res = res + floor_div_unsigned(c, d) - _signed(k // d)
        out.append(res)
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
    tensor instead of two.
    """
    provider = crypten.mpc.get_default_provider()
    plans: list[tuple] = []
    opened: list[torch.Tensor] = []
    for x, y in pairs:
        if x is y:
            r, r2 = provider.square(x.size(), device=x.device)
            plans.append(("sq", len(opened), plain(r.share), plain(r2.share)))
            opened.append(x - plain(r.share))
        else:
            a, b, c = provider.generate_additive_triple(x.size(), y.size(), "mul", device=x.device)
            plans.append(("mul", len(opened), plain(a.share), plain(b.share), plain(c.share)))
            opened += [x - plain(a.share), y - plain(b.share)]
    values = comm.get().all_reduce(opened, batched=True)
    rank0 = comm.get().get_rank() == 0
    out = []
    for plan in plans:
        if plan[0] == "sq":
            _, i, r, r2 = plan
            eps = values[i]
            z = r2 + 2 * r * eps
            if rank0:
                z = z + eps * eps
        else:
            _, i, a, b, c = plan
            eps, delta = values[i], values[i + 1]
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


def ltz_many(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Shares of the integer bits [x < 0] for several share tensors, in one comparison pass.

    CrypTen's comparison: arithmetic-to-binary conversion, a carry-lookahead adder, and a
    1-bit binary-to-arithmetic conversion; it reveals only Beaver-masked values.
    """
    from crypten.mpc import MPCTensor

    flat = torch.cat([t.reshape(-1) for t in tensors])
    if flat.is_cuda:  # CrypTen's binary circuits expect its CUDA wrapper
        from crypten.cuda import CUDALongTensor

        flat = CUDALongTensor(flat)
    bits = plain(MPCTensor.from_shares(flat, precision=0)._ltz()._tensor.share)
    out, offset = [], 0
    for t in tensors:
        out.append(bits[offset : offset + t.numel()].reshape(t.shape))
        offset += t.numel()
    return out


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
