"""Jobs that probe the engine's security properties from inside real party processes.

Run like any job (``launch("mpc.probe_jobs:NAME", ...)``); the tests in
tests/mpc/test_randomness.py, test_secure_links.py and test_lifecycle.py use them to try what
an attacker or a regression would do.  None of them is part of an inference session.
"""

from __future__ import annotations

import hashlib
import time

from mpc._crypten import comm, crypten, ttp_provider


def torch_random_job(ctx) -> dict:
    """Draws from torch's generator as careless code would: must fail (InsecureRandomness)."""
    import torch

    torch.randint(0, 2**62, (4,))  # test-only: the guard of mpc/prg.py must make this raise
    return {"drew": True}


def dealer_stream_job(ctx) -> dict:
    """The first ``n`` ring elements of this party's stream shared with the dealer, in hex
    (test only: in a session they are the masks of this party's dealer shares)."""
    from mpc.prg import random_ring

    n = int(ctx.params.get("n", 1024))
    gen = ttp_provider.TTPClient.get().get_generator()
    values = random_ring((n,), gen).numpy().tobytes().hex()
    pair = random_ring((n,), crypten.generators["next"][gen.device]).numpy().tobytes().hex()
    return {"rank": comm.get().get_rank(), "dealer_stream": values, "next_stream": pair}


def bad_dealer_request_job(ctx) -> dict:
    """Party 0 asks the dealer for something outside its allow-list (``ctx.params['request']``)."""
    if comm.get().get_rank() == 0:
        name, args = ctx.params["request"]
        ttp_provider.TTPClient.get().ttp_request(name, "cpu", *args)
    time.sleep(30)  # the others wait; the dealer's refusal must end the session
    return {}


def sleep_job(ctx) -> dict:
    """Holds the session open (``seconds``): for killing the launcher mid-session."""
    secret = ctx.params.get("texts", [""])
    time.sleep(float(ctx.params.get("seconds", 60)))
    return {"digest": hashlib.sha256("".join(secret).encode()).hexdigest()}


def weight_mask_job(ctx) -> dict | None:
    """A reused weight mask (mpc/protocols.py ``ReusedWeightMask``) as a model session uses it:
    W (model owner's) times three row blocks X_i (data owner's) through one mask; then the same
    mask offered another tensor; then a second mask for the same W.  Returns, to the data owner,
    the products' error against plaintext and what the attempts did."""
    import numpy as np
    import torch

    from mpc.protocols import MaskReuseError, ReusedWeightMask, plain, reveal

    rng = np.random.default_rng(7)  # public test data, not secret randomness
    w = torch.from_numpy(rng.standard_normal((12, 5)))
    xs = [torch.from_numpy(rng.standard_normal((n, 12))) for n in (3, 4, 2)]

    def share(t, src):
        return plain(crypten.cryptensor(t if comm.get().get_rank() == src else torch.zeros_like(t), src=src)._tensor.share)

    ws = share(w, 1)
    mask = ReusedWeightMask(ws)
    errs = []
    for x in xs:
        prod = mask.matmul_raw(share(x, 0), ws)
        got = reveal(prod, 32, dst=0)
        if got is not None:
            errs.append(float((got - x @ w).abs().max()))
    refused = None
    try:
        mask.matmul_raw(share(xs[0], 0), ws.clone())
    except MaskReuseError as err:
        refused = type(err).__name__
    first_delta = mask.delta.clone()
    mask.close()
    second = ReusedWeightMask(ws)
    fresh = not torch.equal(first_delta, second.delta)
    second.close()
    if comm.get().get_rank() != 0:
        return None
    return {"max_error": max(errs), "refused": refused, "fresh_mask": fresh}
