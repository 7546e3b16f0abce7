"""Secret randomness inside real party processes (mpc/prg.py).

Every party process runs with torch's random functions, ``manual_seed`` and in-place samplers
made to raise (``forbid_torch_random``): every other session in the suite (parity, numerics,
comparison, what-parties-see) therefore proves that no secret path draws from torch.  Here:
the guard is really on in the parties, and the dealer's streams for the two parties (the
attack of the security review: one party's seed predicted the other's) are independent.
"""

from __future__ import annotations

import numpy as np
import pytest

from mpc import errors
from mpc.launcher import launch


def test_a_draw_from_torch_inside_a_party_fails_the_session():
    with pytest.raises(errors.InsecureRandomness, match="torch.randint was called in a party process"):
        launch("mpc.probe_jobs:torch_random_job", {}, timeout=120)


def _streams() -> dict[int, dict[str, np.ndarray]]:
    out = launch("mpc.probe_jobs:dealer_stream_job", {"data-owner": {"n": 4096}, "model-owner": {"n": 4096}}, timeout=120)
    return {
        rep["result"]["rank"]: {k: np.frombuffer(bytes.fromhex(rep["result"][k]), dtype=np.uint64)
                                for k in ("dealer_stream", "next_stream")}
        for role, rep in out.reports.items() if role in ("data-owner", "model-owner")
    }  # fmt: skip


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.unpackbits((a ^ b).view(np.uint8)).mean())


def test_the_two_parties_dealer_streams_are_independent_and_fresh_per_session():
    first, second = _streams(), _streams()
    p0, p1 = first[0]["dealer_stream"], first[1]["dealer_stream"]
    assert len(p0) == len(p1) == 4096
    assert not set(p0.tolist()) & set(p1.tolist())  # no shared value
    assert abs(_agreement(p0, p1) - 0.5) < 0.01  # bitwise unrelated
    # the pairwise key really is shared: party 1's "next" stream is what party 0 calls "prev"
    # (not returned), and the two parties' own "next" streams differ
    assert abs(_agreement(first[0]["next_stream"], first[1]["next_stream"]) - 0.5) < 0.01
    # fresh keys every session: nothing repeats across sessions
    for rank in (0, 1):
        assert not set(first[rank]["dealer_stream"].tolist()) & set(second[rank]["dealer_stream"].tolist())
