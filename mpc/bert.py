"""The BERT encoder, written once for every backend (secure, stock CrypTen, plaintext).

Read top-down: ``prepare_weights`` (model owner, plaintext), ``encoder`` (embeddings, then
layers), ``layer`` (attention, feed-forward), then the heads (``sentence_embedding``,
``classifier_logits``).  Shapes: B batch, T padded length, H hidden, nh heads, dh head size,
I intermediate, V vocabulary.
"""

from __future__ import annotations

import math

import torch

from mpc.config import BertConfig
from mpc.meter import component, scope


def prepared_shapes(cfg: BertConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of the tensors the model owner shares (every party must know them)."""
    h, i = cfg.hidden_size, cfg.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "word": (cfg.vocab_size, h),
        "position": (cfg.max_position_embeddings, h),
        "type0": (h,),
        "emb_ln_g": (h,), "emb_ln_b": (h,),
    }  # fmt: skip
    for n in range(cfg.num_hidden_layers):
        p = f"l{n}."
        shapes.update({
            p + "qkv_w": (h, 3 * h), p + "qkv_b": (3 * h,),
            p + "out_w": (h, h), p + "out_b": (h,), p + "ln1_g": (h,), p + "ln1_b": (h,),
            p + "ff1_w": (h, i), p + "ff1_b": (i,), p + "ff2_w": (i, h), p + "ff2_b": (h,),
            p + "ln2_g": (h,), p + "ln2_b": (h,),
        })  # fmt: skip
    if cfg.is_classifier:
        shapes.update({"pool_w": (h, h), "pool_b": (h,), "cls_w": (h, cfg.num_labels), "cls_b": (cfg.num_labels,)})
    return shapes


def prepare_weights(cfg: BertConfig, w: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face layout -> ours: (in, out) matrices, fused Q|K|V with 1/sqrt(dh) folded
    into Q (a public rescaling, so the attention scores need no extra multiplication)."""
    s = 1.0 / math.sqrt(cfg.head_dim)
    out = {
        "word": w["embeddings.word_embeddings.weight"],
        "position": w["embeddings.position_embeddings.weight"],
        "type0": w["embeddings.token_type_embeddings.weight"][0],
        "emb_ln_g": w["embeddings.LayerNorm.weight"],
        "emb_ln_b": w["embeddings.LayerNorm.bias"],
    }
    for n in range(cfg.num_hidden_layers):
        p, q = f"encoder.layer.{n}.", f"l{n}."
        a = p + "attention."
        out[q + "qkv_w"] = torch.cat(
            [w[a + "self.query.weight"] * s, w[a + "self.key.weight"], w[a + "self.value.weight"]]
        ).T.contiguous()
        out[q + "qkv_b"] = torch.cat([w[a + "self.query.bias"] * s, w[a + "self.key.bias"], w[a + "self.value.bias"]])
        out[q + "out_w"] = w[a + "output.dense.weight"].T.contiguous()
        out[q + "out_b"] = w[a + "output.dense.bias"]
        out[q + "ln1_g"] = w[a + "output.LayerNorm.weight"]
        out[q + "ln1_b"] = w[a + "output.LayerNorm.bias"]
        out[q + "ff1_w"] = w[p + "intermediate.dense.weight"].T.contiguous()
        out[q + "ff1_b"] = w[p + "intermediate.dense.bias"]
        out[q + "ff2_w"] = w[p + "output.dense.weight"].T.contiguous()
        out[q + "ff2_b"] = w[p + "output.dense.bias"]
        out[q + "ln2_g"] = w[p + "output.LayerNorm.weight"]
        out[q + "ln2_b"] = w[p + "output.LayerNorm.bias"]
    if cfg.is_classifier:
        out["pool_w"] = w["pooler.dense.weight"].T.contiguous()
        out["pool_b"] = w["pooler.dense.bias"]
        out["cls_w"] = w["classifier.weight"].T.contiguous()
        out["cls_b"] = w["classifier.bias"]
    return out


def encoder(ops, cfg: BertConfig, W: dict, ids, attn_mask, B: int, T: int):
    """Token ids (B*T,; known to the data owner only, None elsewhere) -> hidden states (B, T, H)."""
    H = cfg.hidden_size
    with scope("embeddings"):
        x = ops.embed(ids, B * T, W["word"])  # one-hot (B*T, V) @ (V, H) -> (B*T, H)
        x = ops.reshape(x, B, T, H)
        x = ops.add(ops.add(x, ops.index(W["position"], slice(0, T))), W["type0"])  # + (T, H) + (H,)
        x = ops.layer_norm(x, W["emb_ln_g"], W["emb_ln_b"], cfg.layer_norm_eps)
    for n in range(cfg.num_hidden_layers):
        with scope(f"layer.{n}"):
            x = layer(ops, cfg, W, f"l{n}.", x, attn_mask, B, T)
    return x


def layer(ops, cfg: BertConfig, W: dict, p: str, x, attn_mask, B: int, T: int):
    H, nh, dh = cfg.hidden_size, cfg.num_attention_heads, cfg.head_dim
    qkv = ops.linear(x, W[p + "qkv_w"], W[p + "qkv_b"])  # (B, T, 3H)
    qkv = ops.permute(ops.reshape(qkv, B, T, 3, nh, dh), 2, 0, 3, 1, 4)  # (3, B, nh, T, dh)
    q, k, v = (ops.index(qkv, i) for i in range(3))  # each (B, nh, T, dh); q already / sqrt(dh)
    scores = ops.matmul(q, ops.permute(k, 0, 1, 3, 2), kind="attention")  # (B, nh, T, T)
    probs = ops.softmax(scores, attn_mask, T)  # keys masked: (B, 1, 1, T)
    ctx = ops.matmul(probs, v, kind="attention")  # (B, nh, T, dh)
    ctx = ops.reshape(ops.permute(ctx, 0, 2, 1, 3), B, T, H)  # (B, T, H)
    x = ops.linear_residual_norm(ctx, W[p + "out_w"], W[p + "out_b"], x,
                                 W[p + "ln1_g"], W[p + "ln1_b"], cfg.layer_norm_eps)  # fmt: skip
    f = ops.gelu(ops.linear(x, W[p + "ff1_w"], W[p + "ff1_b"]))  # (B, T, I)
    f = ops.linear(f, W[p + "ff2_w"], W[p + "ff2_b"])  # (B, T, H)
    return ops.layer_norm(ops.add(f, x), W[p + "ln2_g"], W[p + "ln2_b"], cfg.layer_norm_eps)


def sentence_embedding(ops, hidden, pool_mask, T: int):
    """Attention-masked mean of the last hidden states, L2-normalised (sentence-transformers).

    The mean's division by the token count cancels in the normalisation, so we normalise the
    masked sum; pool_mask is (B, T, 1)."""
    with scope("pooling"):
        summed = ops.sum(ops.mul_mask(hidden, pool_mask), 1)  # (B, H)
        return ops.l2_normalize(summed, T)


def classifier_logits(ops, cfg: BertConfig, W: dict, hidden):
    """BertForSequenceClassification: tanh pooler on [CLS], then the linear classifier."""
    with scope("head"), component("head"):
        cls = ops.index(hidden, (slice(None), 0))  # (B, H)
        pooled = ops.tanh(ops.linear(cls, W["pool_w"], W["pool_b"]))
        return ops.linear(pooled, W["cls_w"], W["cls_b"])  # (B, num_labels)
