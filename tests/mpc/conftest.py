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


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory, minilm_dir):
    """A tiny random BertForSequenceClassification saved with save_pretrained (+ MiniLM's
    public tokenizer files, same vocabulary)."""
    import shutil

    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                     num_labels=3, initializer_range=0.2)  # fmt: skip
    path = tmp_path_factory.mktemp("tiny-classifier")
    BertForSequenceClassification(cfg).eval().save_pretrained(path)
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_dir / name, path / name)
    return path
