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
