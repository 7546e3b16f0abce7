"""Ring arithmetic helpers: exact int64 products mod 2^64 (the CUDA path), unsigned division."""

from __future__ import annotations

import torch

from mpc.protocols import floor_div_unsigned, limb_matmul


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
