"""Ring arithmetic helpers: exact products mod 2^64 from float64 limbs (CPU and CUDA paths),
unsigned division."""

from __future__ import annotations

import pytest
import torch

from mpc.protocols import (
    _LIMB_K,
    float_ring_matmul,
    floor_div_unsigned,
    limb_matmul,
    ring_matmul_sum,
)

LO, HI = -(2**63), 2**63 - 1


def test_limb_matmul_equals_int64_matmul_mod_2_64():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-(2**63), 2**63 - 1, (7, 3000), generator=g)
    b = torch.randint(-(2**63), 2**63 - 1, (3000, 5), generator=g)
    assert torch.equal(limb_matmul(a, b), a.matmul(b))
    a4 = torch.randint(-(2**63), 2**63 - 1, (2, 3, 4, 8), generator=g)
    b4 = torch.randint(-(2**63), 2**63 - 1, (2, 3, 8, 4), generator=g)
    assert torch.equal(limb_matmul(a4, b4), a4.matmul(b4))


def test_floor_div_unsigned_matches_python_big_integers():
    g = torch.Generator().manual_seed(1)
    t = torch.randint(-(2**63), 2**63 - 1, (2000,), generator=g)
    for d in (2**16, 2**30, 384, 384 * 2**8, 3):
        got = floor_div_unsigned(t, d).tolist()
        want = [((v % 2**64) // d + 2**63) % 2**64 - 2**63 for v in t.tolist()]
        assert got == want


@pytest.mark.parametrize("k", [1, 64, 768, _LIMB_K, _LIMB_K + 1, 3072, 2 * _LIMB_K + 7])
def test_float_ring_matmul_equals_int64_matmul_mod_2_64(k):
    """Six float64 products of signed limbs, chunked along k: bit-for-bit torch's int64 product."""
    g = torch.Generator().manual_seed(k)
    a = torch.randint(LO, HI, (9, k), generator=g)
    b = torch.randint(LO, HI, (k, 11), generator=g)
    assert torch.equal(float_ring_matmul(a, b), a.matmul(b))


@pytest.mark.parametrize("v", [LO, HI, -1, 1, 2**62, -(2**62) - 12345, 2**43 - 1, -(2**21)])
def test_float_ring_matmul_at_the_extremes(v):
    """Constant operands at the digit bounds: every partial sum at its largest magnitude."""
    k = _LIMB_K
    for w in (v, LO, HI):
        a, b = torch.full((3, k), v), torch.full((k, 4), w)
        assert torch.equal(float_ring_matmul(a, b), a.matmul(b)), (v, w)
        assert torch.equal(float_ring_matmul(b.T.contiguous(), a.T.contiguous()), b.T.matmul(a.T))


def test_float_ring_matmul_broadcasts_like_torch():
    g = torch.Generator().manual_seed(5)
    a = torch.randint(LO, HI, (2, 3, 16, 64), generator=g)
    b = torch.randint(LO, HI, (2, 3, 64, 16), generator=g)
    assert torch.equal(float_ring_matmul(a, b), a.matmul(b))
    x = torch.randint(LO, HI, (2, 16, 96), generator=g)
    w = torch.randint(LO, HI, (96, 40), generator=g)
    assert torch.equal(float_ring_matmul(x, w), x.matmul(w))


def test_ring_matmul_sum_fuses_along_the_inner_dimension():
    g = torch.Generator().manual_seed(6)
    x, e = (torch.randint(LO, HI, (2, 16, 1000), generator=g) for _ in range(2))
    w, b = (torch.randint(LO, HI, (1000, 24), generator=g) for _ in range(2))
    assert torch.equal(ring_matmul_sum([(e, b), (x, w)]), e.matmul(b) + x.matmul(w))
    y = torch.randint(LO, HI, (1000, 24), generator=g)  # shapes that cannot be stacked
    z = torch.randint(LO, HI, (16, 1000), generator=g)
    assert torch.equal(ring_matmul_sum([(e, b), (z, y)]), e.matmul(b) + z.matmul(y))
