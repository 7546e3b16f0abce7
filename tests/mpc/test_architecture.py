"""Our one encoder (mpc/bert.py) with the exact float64 backend equals Hugging Face.

This pins the architecture (weight mapping, attention with padding, erf GELU, LayerNorm,
pooling, classifier head) before any secure arithmetic is involved."""

from __future__ import annotations

import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from mpc.session import plaintext_forward
from tests.mpc.texts import varied_texts


def hf_sentence_embeddings(model_dir, texts):
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).double().eval()
    enc = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).double()
    return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)


def test_minilm_embeddings_match_hugging_face(minilm_dir):
    texts = varied_texts(40, seed=3)
    ours = plaintext_forward("minilm", texts)
    theirs = hf_sentence_embeddings(minilm_dir, texts)
    assert (ours - theirs).abs().max() < 1e-9


def test_classifier_logits_match_hugging_face(tiny_classifier_dir):
    texts = varied_texts(30, seed=4)
    ours = plaintext_forward(tiny_classifier_dir, texts)
    tok = AutoTokenizer.from_pretrained(str(tiny_classifier_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_classifier_dir)).double().eval()
    enc = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        theirs = model(**enc).logits
    assert (ours - theirs).abs().max() < 1e-9
