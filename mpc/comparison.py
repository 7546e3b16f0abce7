"""Dealer-assisted comparison: shares of [x < 0] in 3 rounds (``ltz_many``).

SecureNN's PrivateCompare with our dealer as the helper that sees only a masked bit; the
protocol and its security argument are in ``ltz_many``'s docstring.  CrypTen's own sign test
(``ltz_many_crypten``) stays selectable for side-by-side benchmarks (``comparison_protocol``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from mpc import prg
from mpc._crypten import comm, crypten, ttp_provider
from mpc.meter import tag
from mpc.protocols import plain, ring_random

_PROTOCOL = {"name": "dealer"}


P_FIELD = 67  # prime field of the blinded comparison vectors; > 64 + 1, fits a byte
_CMP_OBSERVERS: list = []  # test hook: callables that see (opened c, this party's message to the dealer, extras)


@contextlib.contextmanager
def observe_comparisons(fn) -> Iterator[None]:
    """Within the block, ``fn(c, d, extras)`` sees every opened c, this party's vectors for the
    dealer, and ``extras``: its Z_67 shares ``a`` (which the dealer knows: it dealt them) and the
    vectors as they were before the zero-sum mask (``unmasked``), for the tests that attack
    the protocol as the dealer would."""
    _CMP_OBSERVERS.append(fn)
    try:
        yield
    finally:
        _CMP_OBSERVERS.remove(fn)


def _field_random(size, gen, device) -> torch.Tensor:
    """Uniform elements of Z_67 as int16 (party i's share of the dealer's bit shares), from the
    AES-CTR stream of the key this party shares with the dealer (mpc/prg.py)."""
    return prg.random_below(size, P_FIELD, gen, device, dtype=torch.int16)


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


def dealer_prep(self, n, k, f=0):  # dealer: r (free, from seeds), Z_p shares of bits f..k-2
    r = plain(self._get_additive_PRSS((n,)))
    bits = _bits_of(r >> f, k - 1 - f)
    others = torch.zeros_like(bits)
    for g in self._get_generators(device=self.device)[1:]:
        others = others + _field_random((n, k - 1 - f), g, bits.device)
    if not hasattr(self, "_smt_cmp"):
        self._smt_cmp = []
    self._smt_cmp.append((r >> (k - 1)) & 1)  # the top bit of r mod 2^k, for the answer
    return _pack_bytes(((bits - others) % P_FIELD).to(torch.uint8))


def dealer_answer(self, n, m):  # dealer: learns only beta' = beta XOR [r_hi > c_hi]
    ttp_group = comm.get().ttp_group
    total = torch.zeros((n, m), dtype=torch.int32)
    for src in range(comm.get().get_world_size()):
        buf = torch.empty((n, m), dtype=torch.uint8)
        torch.distributed.recv(buf, src=src, group=ttp_group)
        total += buf.to(torch.int32)
    beta_prime = ((total % P_FIELD) == 0).any(-1).long().to(self.device or "cpu")
    z = beta_prime ^ self._smt_cmp.pop(0)
    return z - plain(self._get_additive_PRSS((n,), remove_rank=True))


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
    before = _PROTOCOL["name"]
    _PROTOCOL["name"] = name
    try:
        yield
    finally:
        _PROTOCOL["name"] = before


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
    3. with randomness common to the computing parties only (the "global" AES-CTR key of
       mpc/prg.py, unknown to the dealer) -- a bit beta, multipliers s_i in Z_67^*, a rotation rho -- each
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
    and the uniform rotation puts the (at most one) zero at a uniform position.  The dealer
    receives one vector per party, not only their sum, and it knows every party's share of
    r's bits (it dealt them): without the zero-sum mask, the ratio of two parties' entries
    cancels s and reveals e's shares, hence c (a review found this and
    tests/mpc/test_comparison.py mounts the attack).  With the mask, the parties' vectors are
    a uniformly random additive sharing of their sum, so the dealer's view is a function of
    the sum alone: of beta', a uniform bit (beta is uniform and hidden from it).
    The parties receive only uniform shares.  Cost: 3 rounds (open c; to the dealer; back);
    per element and party 4 bytes for c (8 if k > 32) plus k-1-fuzz bytes to the dealer; the
    dealer sends party 0 k-1-fuzz bytes and one ring element per element (CrypTen's sign test:
    ~8 rounds and ~350 bytes per element).  Its vectors are built in chunks of _CMP_CHUNK
    elements to bound memory.
    """
    from mpc.meter import current

    if not 2 <= k <= 64 or not 0 <= fuzz < k - 1:
        raise ValueError(f"comparison width k must be in [2, 64] and fuzz in [0, k - 2], got {k}, {fuzz}")
    if _PROTOCOL["name"] == "crypten":
        return ltz_many_crypten(tensors)
    flat = torch.cat([plain(t).reshape(-1) for t in tensors])
    n, device = flat.numel(), flat.device
    rank = comm.get().get_rank()
    client = ttp_provider.TTPClient.get()
    gen = client.get_generator(device=device)
    kl = k - 1
    m = kl - fuzz  # compared bits: fuzz .. k-2
    # 1. correlated randomness: r from seeds, Z_p shares of bits fuzz..k-2 (int16 from here on)
    r = ring_random((n,), gen, device)
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
    world = comm.get().get_world_size()
    parts, unmasked = [], []
    for lo in range(0, n, _CMP_CHUNK):
        hi = min(n, lo + _CMP_CHUNK)
        beta = prg.random_below((hi - lo,), 2, g, device)
        s = prg.random_below((hi - lo, m), P_FIELD - 1, g, device, dtype=torch.int16) + 1
        rho = prg.random_below((hi - lo, 1), m, g, device)
        # a zero-sum sharing of 0 over Z_67 from the common key (the dealer has not got it):
        # party i > 0 adds u_i, party 0 adds -sum(u_i); every party draws all of them in order
        us = [prg.random_below((hi - lo, m), P_FIELD, g, device, dtype=torch.int16) for _ in range(world - 1)]
        mask = -sum(us, torch.zeros_like(us[0])) if rank == 0 else us[rank - 1]
        betas.append(beta)
        part = _blinded(a[lo:hi].to(torch.int16), c_hi[lo:hi], beta, s, rho, j, m, hi_mask)
        if _CMP_OBSERVERS:
            unmasked.append(part.clone())
        parts.append(torch.remainder(part.to(torch.int16) + mask, P_FIELD).to(torch.uint8))
    d = torch.cat(parts).cpu()
    beta = torch.cat(betas)
    for fn in _CMP_OBSERVERS:
        fn(c, d, {"a": a, "unmasked": torch.cat(unmasked).cpu()})
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
        z = ring_random((n,), gen, device)
    meter = current()
    if meter is not None:
        with tag("comparison"):
            meter.add(rounds=2, nbytes=d.numel())
    v = c_top ^ beta
    bits = (1 - 2 * v) * plain(z)
    if rank == 0:
        bits = bits + v
    return _split(bits, tensors)
