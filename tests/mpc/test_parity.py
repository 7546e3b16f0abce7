"""Secure inference equals plaintext Hugging Face on the real model and on a classifier.

Real parties (separate OS processes, TTP dealer), real all-MiniLM-L6-v2 weights."""

from __future__ import annotations

import numpy as np
import pytest

from mpc.api import run_inference, run_inference_batched
from mpc.session import plaintext_forward
from tests.mpc.texts import SENTENCES, varied_texts

# The suite runs 24 varied texts (12 languages and scripts, numbers, punctuation, emoji, repeated
# words; 1 to 128 tokens) in two sessions; bench/parity.py runs the full 200-text and
# 1,000-sequence sweeps and records them in bench/results/.
LONG = [
    "consent " * 200,  # truncated to 128 tokens
    " ".join(SENTENCES[:8]),
    "🙂 42 Zürich данные " * 15,
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_minilm_varied_texts_cosine_at_least_0999():
    texts = SENTENCES + LONG
    secure = run_inference_batched(texts, model="minilm", max_attention_cells=65536)
    ref = plaintext_forward("minilm", texts).numpy()  # equals Hugging Face (test_architecture)
    cos = cosines(secure.outputs, ref)
    print(f"\nMiniLM parity over {len(texts)} texts: min cosine {cos.min():.7f}, "
          f"max abs error {np.abs(secure.outputs - ref).max():.2e}, sessions {secure.cost['sessions']}")
    assert cos.min() >= 0.999
    assert np.abs(secure.outputs - ref).max() < 5e-3


@pytest.mark.parametrize("parties", [2, 3])
def test_tiny_classifier_argmax_agreement_and_logit_error(tiny_classifier_dir, parties):
    n = 200 if parties == 2 else 60
    texts = varied_texts(n, seed=5 + parties)
    secure = run_inference(texts, model=tiny_classifier_dir, parties=parties, max_length=32)
    ref = plaintext_forward(tiny_classifier_dir, texts, max_length=32).numpy()
    assert secure.kind == "classification"
    assert secure.labels == [int(i) for i in ref.argmax(1)]
    assert np.abs(secure.outputs - ref).max() <= 0.05


def test_minilm_three_parties():
    texts = varied_texts(8, seed=21)
    secure = run_inference(texts, model="minilm", parties=3)
    ref = plaintext_forward("minilm", texts).numpy()
    assert cosines(secure.outputs, ref).min() >= 0.999
    assert set(secure.cost["bytes_per_party"]) == {"data-owner", "model-owner", "helper-2"}
