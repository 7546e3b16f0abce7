"""What each party receives, recorded byte for byte (SMT_WIRETAP) and searched.

The model owner must never receive the token ids or the text; the data owner must never
receive weights in the clear.  Positive controls show that the tap does record what the
parties exchange (the public batch shape; the revealed outputs)."""

from __future__ import annotations

import pickle

import numpy as np
import torch

from mpc.api import run_inference
from mpc.config import BertConfig, load_weights, resolve_model_dir
from mpc.session import load_tokenizer, tokenize

TEXTS = ["Patient Jane Roe has stage two melanoma.", "Salary 123456 EUR for employee 42."]


def test_model_owner_never_sees_tokens_and_data_owner_never_sees_weights(tmp_path):
    taps = {role: tmp_path / f"{role}.bin" for role in ("data-owner", "model-owner")}
    res = run_inference(TEXTS, model="minilm", timeout=300,
                        env_by_role={r: {"SMT_WIRETAP": str(p), "SMT_TEST_HOOKS": "1"} for r, p in taps.items()})  # fmt: skip
    seen_by_model_owner = taps["model-owner"].read_bytes()
    seen_by_data_owner = taps["data-owner"].read_bytes()

    model_dir = resolve_model_dir("minilm")
    ids, _ = tokenize(load_tokenizer(model_dir), TEXTS, max_length=128)
    # positive control: the public batch shape was broadcast to the model owner
    assert pickle.dumps(tuple(ids.shape)) in seen_by_model_owner
    for row in ids:
        content = row[1:-1]  # without [CLS]/[SEP]
        for encoded in (content.numpy().astype("<i8"), content.numpy().astype("<i4"),
                        (content * 2**16).numpy().astype("<i8")):  # fmt: skip
            assert encoded.tobytes() not in seen_by_model_owner
    for text in TEXTS:
        assert text.encode() not in seen_by_model_owner
        assert text.split()[1].encode() not in seen_by_model_owner

    cfg = BertConfig.from_pretrained(model_dir)
    weights = load_weights(model_dir, cfg)
    for name in ("embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight",
                 "encoder.layer.5.output.dense.weight", "embeddings.LayerNorm.weight"):  # fmt: skip
        w = weights[name].reshape(-1)[:16]
        for encoded in (w.numpy().astype("<f8"), w.float().numpy().astype("<f4"),
                        torch.round(w * 2**16).long().numpy().astype("<i8")):  # fmt: skip
            assert encoded.tobytes() not in seen_by_data_owner
    # positive control: the revealed output (sum of shares, 16 fractional bits) reached the data owner
    revealed = np.round(res.outputs.astype(np.float64) * 2**16).astype("<i8")
    assert revealed[0, :4].tobytes() in seen_by_data_owner
