"""Shared helpers for the engine tests: every MPC test runs real parties as OS processes."""

from __future__ import annotations

import numpy as np
import pytest

from mpc.launcher import launch

PARTY_COUNTS = [2, 3]  # 2 computing parties + dealer, and 3 computing parties + dealer


def run_numerics(inputs: dict[str, np.ndarray], parties: int) -> dict[str, np.ndarray]:
    out = launch(
        "mpc.numerics_job:numerics_job",
        {"data-owner": {"inputs": {k: [float(x) for x in v] for k, v in inputs.items()}}},
        parties=parties,
        timeout=300,
    )
    return {k: np.array(v) for k, v in out.result.items()}


@pytest.fixture(scope="session")
def minilm_dir():
    from mpc.config import resolve_model_dir

    return resolve_model_dir("minilm")
