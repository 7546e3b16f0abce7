"""Our secure numerics, swept over their whole valid range and past its edges.

One MPC session per party count evaluates every function (real party processes, TTP dealer);
tolerances are the error bounds stated in each docstring of mpc/numerics.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from tests.mpc.conftest import PARTY_COUNTS, run_numerics

rng = np.random.default_rng(7)
INPUTS = {
    # exp: the whole valid range [-1900, 0], dense near 0 where values matter
    "exp": np.concatenate([np.linspace(-1900, 0, 1901), np.linspace(-20, 0, 2001)]),
    # reciprocal: [1, 128] (softmax row sums) and past the edge up to 2U
    "reciprocal": np.concatenate([np.linspace(1, 128, 1271), np.linspace(128, 250, 50)]),
    # inverse square root: log-spaced over [2^-10, 2^16] (variances, squared norms)
    "inv_sqrt": np.exp(np.linspace(np.log(2.0**-10), np.log(2.0**16), 1001)),
    # GELU: valid range [-32, 32], dense in [-6, 6]
    # (and the band |x| < 2^-8 where the sign test may take either branch: both must agree)
    "gelu": np.concatenate([np.linspace(-32, 32, 1281), np.linspace(-6, 6, 2401), np.linspace(-0.01, 0.01, 401)]),
    "tanh": np.linspace(-30, 30, 1201),
    # softmax rows of 8 logits spanning the real models' range (-57 to 75)
    "softmax8": rng.uniform(-60, 75, size=8 * 200),
    # truncation of large products: values up to 2^20 (products of ~1e3 x 1e3)
    "truncate": np.concatenate([rng.normal(0, 100, 20000), rng.uniform(-(2.0**20), 2.0**20, 20000)]),
}


@pytest.fixture(scope="module", params=PARTY_COUNTS, ids=lambda p: f"{p}parties")
def results(request):
    return run_numerics(INPUTS, request.param)


def test_exp_within_stated_error(results):
    x, y = INPUTS["exp"], results["exp"]
    assert np.abs(y - np.exp(x)).max() < 3e-5
    assert y.min() > -1e-4  # large negative inputs decay to 0, never blow up


def test_reciprocal_within_stated_error(results):
    x, y = INPUTS["reciprocal"], results["reciprocal"]
    assert np.abs(y - 1 / x).max() < 5e-5
    assert np.abs(y * x - 1)[x <= 128].max() < 3e-3  # relative, 16-bit output at 1/128


def test_inv_sqrt_relative_error(results):
    x, y = INPUTS["inv_sqrt"], results["inv_sqrt"]
    assert np.abs(y * np.sqrt(x) - 1).max() < 2e-4


def test_gelu_matches_erf_gelu(results):
    x, y = INPUTS["gelu"], results["gelu"]
    assert np.abs(y - x * norm.cdf(x)).max() < 2.5e-4


def test_tanh(results):
    x, y = INPUTS["tanh"], results["tanh"]
    assert np.abs(y - np.tanh(x)).max() < 1e-4


def test_softmax_padded_keys_get_zero_attention(results):
    z = INPUTS["softmax8"].reshape(-1, 8)
    y = results["softmax8"].reshape(-1, 8)
    assert np.all(y[:, 6:] == 0.0)  # exactly zero, not just small
    zz = z[:, :6]
    p = np.exp(zz - zz.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert np.abs(y[:, :6] - p).max() < 5e-5
    assert np.abs(y.sum(1) - 1).max() < 5e-4


def test_truncation_is_exact_even_for_large_values(results):
    """CrypTen's probabilistic truncation is off by ~2^32 with probability ~|x|/2^63; ours
    is never off by more than one unit in the last place."""
    x, y = INPUTS["truncate"], results["truncate"]
    assert np.abs(y - x).max() <= 2.0**-16 * 1.01 + np.abs(x).max() * 2**-52
