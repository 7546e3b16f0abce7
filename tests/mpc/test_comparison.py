"""The dealer-assisted comparison (mpc.comparison.ltz_many): exact, and masked on every channel.

Real parties and dealer as OS processes.  The masking tests look at exactly what crosses the
wire: the opened c (seen by every computing party) and the dealer's view (the sum mod 67 of the
blinded vectors the parties send it; the test job gathers them at the data owner to check).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from mpc.launcher import launch
from tests.mpc.conftest import PARTY_COUNTS

rng = random.Random(11)
WIDTHS = (2, 3, 8, 17, 33, 48, 64)


def _values(k: int, n: int) -> list[int]:
    lim = (1 << (k - 1)) - 1
    edges = [0, 1, -1, lim, -lim, lim - 1, -lim + 1]
    small = [rng.randint(-min(50, lim), min(50, lim)) for _ in range(n // 4)]
    return edges + small + [rng.randint(-lim, lim) for _ in range(n)]


def _fuzzy(k: int, f: int, n: int) -> list[int]:
    lim = (1 << (k - 1)) - 1
    return [0, 1, -1, (1 << f) - 1, -(1 << f) + 1, 1 << f, -(1 << f)] + [rng.randint(-lim, lim) for _ in range(n)] \
        + [rng.randint(-(1 << (f + 2)), 1 << (f + 2)) for _ in range(n)]  # fmt: skip


N_MASK = 2000
FUZZY = [(28, 8), (33, 6), (64, 20)]
CASES = [(k, _values(k, 400)) for k in WIDTHS] + [(k, _fuzzy(k, f, 400), f) for k, f in FUZZY] + [
    (16, [-5] * N_MASK),  # one constant negative value: c must still look uniform
    (16, [7] * N_MASK),  # the dealer's view must not tell these two apart
    (8, [rng.randint(-127, 127) for _ in range(N_MASK)]),  # positions of the zero
]


@pytest.fixture(scope="module", params=PARTY_COUNTS, ids=lambda p: f"{p}parties")
def results(request):
    # chunks of 1000 elements: the vectors of one comparison are built in several pieces
    out = launch("mpc.numerics_job:comparison_job", {"data-owner": {"cases": CASES, "chunk": 1000}},
                 parties=request.param, timeout=300)  # fmt: skip
    return out.result


@pytest.mark.parametrize("i", range(len(WIDTHS)), ids=[f"k={k}" for k in WIDTHS])
def test_sign_is_exact_over_the_whole_range(results, i):
    k, values = CASES[i]
    expected = [int(v < 0) for v in values]
    assert results[i]["bits"] == expected


@pytest.mark.parametrize("i", range(len(FUZZY)), ids=[f"k={k},fuzz={f}" for k, f in FUZZY])
def test_fuzzy_sign_is_exact_away_from_zero(results, i):
    """With the low f bits left out, |x| >= 2^f (and inside the range) is still exact."""
    k, values, f = CASES[len(WIDTHS) + i]
    got = results[len(WIDTHS) + i]["bits"]
    lim = (1 << (k - 1)) - (1 << f)
    checked = [(v, b) for v, b in zip(values, got, strict=True) if (1 << f) <= abs(v) < lim]
    assert len(checked) > 300
    assert all(b == int(v < 0) for v, b in checked)
    assert all(b in (0, 1) for b in got)


def test_dealer_sees_at_most_one_zero_per_comparison(results):
    for r in results:
        assert max(r["zeros"]) <= 1


def test_dealers_view_is_a_fair_coin_whatever_the_sign(results):
    """The dealer learns beta' = beta XOR borrow: without beta it would be 0/1 by sign (and
    with c's low bits, leak x); both constant inputs must give a fair coin."""
    for r in results[-3:-1]:
        frac = np.mean(r["zeros"])
        assert abs(frac - 0.5) < 5 * 0.5 / np.sqrt(N_MASK), frac


def test_position_of_the_zero_is_uniform(results):
    """Without the rotation the zero would sit at the first bit where r and c differ."""
    r = results[-1]
    at = np.array([a for a in r["zero_at"] if a >= 0])
    counts = np.bincount(at, minlength=7)
    expected = len(at) / 7
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 22.5, counts  # 6 degrees of freedom, p < 0.001


def test_opened_value_is_uniform_for_a_constant_input(results):
    """c = x + r mod 2^16 for x = -5 everywhere: spread over the whole ring, not at x."""
    for r in results[-3:-1]:
        c = np.array(r["c"], dtype=np.float64) / 2**16
        assert len(set(r["c"])) > N_MASK * 0.9
        assert abs(c.mean() - 0.5) < 0.05
        hist = np.histogram(c, bins=8, range=(0, 1))[0]
        assert hist.min() > N_MASK / 8 * 0.6


# ------------------------------------------------------------------------------------------
# the dealer as an attacker: it knows every party's Z_67 shares of r's bits (it dealt them) and
# receives each party's vector separately


def _dealer_attack(a0, a1, d0, d1, m):
    """Every (public side q, sigma) consistent with what the dealer sees of one element, found
    by decoding q from the top bit down for every rotation; e_j as in comparison._blinded."""
    p = 67
    found = []
    for rho in range(m):
        for sigma in (1, p - 1):
            stack = [(m - 1, [], (0, 0))]  # (position, q bits above it (top first), suffixes)
            while stack:
                t, qs, (s0, s1) = stack.pop()
                if t < 0:
                    found.append((tuple(reversed(qs)), sigma))
                    continue
                pos = (t - rho) % m  # where position t landed after the rotation
                for q in (0, 1):
                    e0 = (s0 + 1 + sigma * (q - a0[t])) % p
                    e1 = (s1 + sigma * (-a1[t])) % p
                    if (d0[pos] * e1 - d1[pos] * e0) % p == 0 and (e0 or e1):
                        w0, w1 = (a0[t] + q - 2 * q * a0[t]) % p, (a1[t] - 2 * q * a1[t]) % p
                        stack.append((t - 1, [*qs, q], ((s0 + w0) % p, (s1 + w1) % p)))
    return found


def test_the_dealer_cannot_recover_c_from_the_parties_separate_vectors():
    """The attack a review found (before the zero-sum mask): from a_0, a_1 and d_0, d_1 the
    dealer decodes c's bits.  Positive control: on the unmasked vectors it recovers c for
    nearly every element; on what it really receives, for none."""
    k, m = 12, 11
    values = [rng.randint(-(1 << 10), 1 << 10) for _ in range(60)]
    out = launch("mpc.numerics_job:comparison_view_job", {"data-owner": {"k": k, "values": values}}, timeout=300)
    p0, p1 = out.reports["data-owner"]["result"], out.reports["model-owner"]["result"]
    c_hi = [c & ((1 << m) - 1) for c in p0["c"]]

    def recovered(d0, d1):
        hits = 0
        for i in range(len(values)):
            for q, sigma in _dealer_attack(p0["a"][i], p1["a"][i], d0[i], d1[i], m):
                beta = 0 if sigma == 1 else 1
                if sum(b << t for t, b in enumerate(q)) - beta == c_hi[i]:
                    hits += 1
                    break
        return hits

    assert recovered(p0["unmasked"], p1["unmasked"]) >= 0.9 * len(values)  # the attack works
    assert recovered(p0["d"], p1["d"]) <= 2  # what the dealer really gets: nothing beyond chance
