"""The dealer serves only an allow-list of functions, within size limits (mpc/dealer.py)."""

from __future__ import annotations

import pytest

from mpc import errors
from mpc.dealer import MAX_ELEMENTS, check_request
from mpc.launcher import launch


def _msg(function, *args, device="cpu", **kwargs):
    return {"function": function, "device": device, "args": args, "kwargs": kwargs}


@pytest.mark.parametrize("message", [
    _msg("additive", (4, 8), (8, 2), "matmul"),
    _msg("square", (3, 3)),
    _msg("B2A", (10,)),
    _msg("smt_trunc", (5, 7), 65536, True),
    _msg("smt_cmp_prep", 1000, 40, 4),
    _msg("smt_cmp_answer", 1000, 35),
    _msg("smt_wmask", (384, 384), 3),
    _msg("smt_batch", [("smt_trunc", ((4,), 65536)), ("smt_mtriple", ((2, 3), (3, 4)))]),
    _msg("additive", (1, 3, 8, 8), (4, 3, 3, 3), "conv2d", stride=1, padding=(1, 1)),
])  # fmt: skip
def test_requests_the_engine_makes_are_served(message):
    assert check_request(message)[0] == message["function"]


@pytest.mark.parametrize(("message", "why"), [
    (_msg("__init__"), "does not serve '__init__'"),
    (_msg("_setup_generators"), "does not serve"),
    (_msg("_get_additive_PRSS", (4,)), "does not serve"),
    (_msg("additive", (4,), (4,), "__class__"), "operation '__class__' is not allowed"),
    (_msg("square", (1 << 20, 1 << 20)), f"the dealer's limit is {MAX_ELEMENTS}"),
    (_msg("square", (-1, 4)), "non-negative integers"),
    (_msg("square", "4"), "tuple"),
    (_msg("smt_trunc", (4,), 0), "divisor must be an integer"),
    (_msg("smt_batch", [("smt_cmp_answer", (4, 4))]), "does not serve 'smt_cmp_answer'"),
    (_msg("smt_batch", [("smt_batch", ([],))]), "does not serve 'smt_batch'"),
    (_msg("square", (4,), device="cuda; rm -rf /"), "device must be"),
    (_msg("square", (4,), evil=1), "takes no keyword arguments"),
    ({"function": "square", "args": ((4,),)}, "must be a dict with"),
])  # fmt: skip
def test_anything_else_is_refused_with_a_clear_error(message, why):
    with pytest.raises(errors.DealerRequestError, match=why.replace("(", r"\(").replace(")", r"\)")):
        check_request(message)


def test_a_bad_request_aborts_the_session_naming_the_dealer():
    with pytest.raises(errors.DealerRequestError) as info:
        launch("mpc.probe_jobs:bad_dealer_request_job", {"data-owner": {"request": ["_get_additive_PRSS", [[4]]]}},
               timeout=120)  # fmt: skip
    assert "dealer" in str(info.value) and "_get_additive_PRSS" in str(info.value)
