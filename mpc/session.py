"""One secure inference session, as run by each party (the job ``mpc.session:inference_job``).

Order of a session (every step is the same on every computing party):

1. the model owner reads config.json and its weights, and broadcasts the *public* architecture;
2. the data owner tokenises its texts locally and broadcasts the public batch shape (B, T);
3. all parties check that they agree (architecture, shapes, backend, options) and stop with a
   ProtocolError naming the difference if not;
4. the model owner secret-shares its weights, the data owner its one-hot tokens and masks;
5. the encoder runs on shares; the outputs are revealed to the data owner only.

What each party learns: the data owner the outputs (embeddings or logits) and the public
architecture; the model owner B and T (the batch size and padded length) only; the helper and
the dealer nothing beyond B and T.  With ``pad_to="longest"`` T is the longest text's token
count in the batch; ``pad_to="max_length"`` hides that too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from mpc import bert
from mpc._crypten import comm, crypten
from mpc.backends import PlainOps, SecureOps, StockOps
from mpc.comparison import comparison_protocol
from mpc.config import BertConfig, load_weights, resolve_model_dir
from mpc.errors import InputError, ProtocolError
from mpc.meter import scope
from mpc.numerics import F, Fx
from mpc.protocols import exact_truncation, plain, reveal

# "secure-crypten-cmp": our engine with CrypTen's comparison (the previous engine), for benchmarks
BACKENDS = {"secure": SecureOps, "secure-crypten-cmp": SecureOps, "vanilla": StockOps}


# ------------------------------------------------------------------------------------------
# data owner: tokenisation (tokenizer files are public)


def load_tokenizer(directory: Path):
    from tokenizers import Tokenizer

    path = Path(directory) / "tokenizer.json"
    if not path.is_file():
        raise InputError(f"no tokenizer.json in {directory}; the data owner needs the model's public tokenizer files")
    return Tokenizer.from_file(str(path))


def tokenize(tokenizer, texts: list[str], *, max_length: int, on_overlong: str = "truncate",
             pad_to: str = "longest") -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Token ids and attention mask (B, T).  Errors name the record index, never its text."""
    if not texts:
        raise InputError("the batch is empty; give at least one text")
    if on_overlong not in ("truncate", "reject"):
        raise InputError(f"on_overlong must be 'truncate' or 'reject' (got {on_overlong!r})")
    tokenizer.no_truncation()
    tokenizer.no_padding()
    rows = []
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"record {i}: empty text; remove the record or give it text")
        ids = tokenizer.encode(text).ids
        if len(ids) > max_length:
            if on_overlong == "reject":
                raise InputError(
                    f"record {i}: {len(ids)} tokens exceed max_length {max_length}; "
                    "shorten it, raise max_length, or choose on_overlong='truncate'"
                )
            ids = ids[: max_length - 1] + ids[-1:]  # keep [SEP]
        rows.append(ids)
    T = max_length if pad_to == "max_length" else max(len(r) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


# ------------------------------------------------------------------------------------------
# sharing


def _share_weights(ctx, cfg: BertConfig, prepared: dict | None, backend: str, device: str) -> dict:
    shapes = bert.prepared_shapes(cfg)
    out = {}
    for name, shape in shapes.items():
        w = prepared[name] if prepared is not None else torch.zeros(shape, dtype=torch.float64)
        t = crypten.cryptensor(w.float() if backend == "vanilla" else w, src=1, device=device)
        out[name] = t if backend == "vanilla" else Fx(plain(t._tensor.share), F)
    return out


def _share_masks(ctx, mask, B: int, T: int, backend: str, device: str):
    m = mask.double() if ctx.rank == 0 else torch.zeros(B, T, dtype=torch.float64)
    if backend == "vanilla":
        mk = crypten.cryptensor(m.float(), src=0, device=device)
        return mk.reshape(B, 1, 1, T), mk.reshape(B, T, 1)
    # integers (0 fractional bits): multiplying by them needs no truncation
    mk = plain(crypten.cryptensor(m, src=0, precision=0, device=device)._tensor.share)
    return mk.reshape(B, 1, 1, T), mk.reshape(B, T, 1)


def exchange(ctx, mine):
    """Every computing party's ``mine``, in rank order (one broadcast per party)."""
    return [comm.get().broadcast_obj(mine if r == ctx.rank else None, r) for r in range(ctx.world_size)]


def encode_and_reveal(ctx, ops, cfg: BertConfig, W: dict, ids, mask, B: int, T: int, *, backend: str, cmp: str,
                      return_hidden: bool):  # fmt: skip
    """Share the data owner's masks, run the encoder and its head on shares, and reveal the
    outputs (and the last hidden states when asked) to the data owner only: (outputs, hidden),
    None elsewhere."""
    attn_mask, pool_mask = _share_masks(ctx, mask, B, T, backend, ctx.device)
    flat_ids = ids.reshape(-1) if ids is not None else None
    with exact_truncation(backend != "vanilla"), comparison_protocol(cmp):
        hidden = bert.encoder(ops, cfg, W, flat_ids, attn_mask, B, T)
        out = bert.classifier_logits(ops, cfg, W, hidden) if cfg.is_classifier else \
            bert.sentence_embedding(ops, hidden, pool_mask, T)  # fmt: skip
        with scope("reveal"):
            return _reveal(out, backend), (_reveal(hidden, backend) if return_hidden else None)


def _agree(ctx, facts: dict) -> None:
    """Every party states what it expects; any difference stops the session."""
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()
    theirs = exchange(ctx, {"role": ctx.role, "digest": digest, "facts": facts})
    for other in theirs:
        if other["digest"] != digest:
            diff = {k: (facts.get(k), other["facts"].get(k)) for k in set(facts) | set(other["facts"])
                    if facts.get(k) != other["facts"].get(k)}  # fmt: skip
            raise ProtocolError(
                f"parties disagree with {other['role']}: {diff} (ours, theirs); "
                "give every party the same model, options and batch shape"
            )


# ------------------------------------------------------------------------------------------
# the job


def inference_job(ctx) -> dict | None:
    p = ctx.params
    backend = p.get("backend", "secure")
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {sorted(BACKENDS)} (got {backend!r})")
    device = ctx.device

    # 1. public architecture from the model owner (weights stay in its process)
    prepared = None
    if ctx.role == "model-owner":
        model_dir = resolve_model_dir(p["model"])
        cfg = BertConfig.from_pretrained(model_dir)
        prepared = bert.prepare_weights(cfg, load_weights(model_dir, cfg))
    cfg_dict = comm.get().broadcast_obj(cfg.to_public_dict() if ctx.role == "model-owner" else None, 1)
    cfg = BertConfig.from_public_dict(cfg_dict)

    # 2. the data owner's batch, tokenised locally; only its shape is broadcast
    ids = mask = None
    if ctx.role == "data-owner" and p.get("token_ids") is not None:  # benchmarks: exact lengths
        ids = torch.tensor(p["token_ids"], dtype=torch.long)
        mask = torch.ones_like(ids)
    elif ctx.role == "data-owner":
        tok = load_tokenizer(resolve_model_dir(p["tokenizer"]))
        ids, mask = tokenize(tok, p["texts"], max_length=int(p.get("max_length", 128)),
                             on_overlong=p.get("on_overlong", "truncate"), pad_to=p.get("pad_to", "longest"))  # fmt: skip
    if ids is not None and ids.shape[1] > cfg.max_position_embeddings:
        raise InputError(f"padded length {ids.shape[1]} exceeds the model's {cfg.max_position_embeddings} positions")
    B, T = comm.get().broadcast_obj(tuple(ids.shape) if ids is not None else None, 0)

    # 3. agreement
    _agree(ctx, {"config": cfg_dict, "backend": backend, "max_length": int(p.get("max_length", 128)),
                 "batch": [B, T], "world_size": ctx.world_size})  # fmt: skip

    # 4. sharing (no communication: CrypTen's pseudo-random zero sharing)
    W = _share_weights(ctx, cfg, prepared, backend, device)
    del prepared

    # 5. the encoder on shares; reveal to the data owner only
    cmp = "crypten" if backend == "secure-crypten-cmp" else "dealer"
    values, hidden_plain = encode_and_reveal(ctx, BACKENDS[backend](), cfg, W, ids, mask, B, T, backend=backend,
                                             cmp=cmp, return_hidden=bool(p.get("return_hidden")))  # fmt: skip
    if ctx.role != "data-owner":
        return None
    result = {
        "kind": "classification" if cfg.is_classifier else "embedding",
        "shape": list(values.shape),
        "batch": [B, T],
        "layers": cfg.num_hidden_layers,
    }
    out_path = p.get("output")
    if out_path:
        torch.save({"outputs": values, "hidden": hidden_plain}, out_path)
    return result


def _reveal(x, backend: str):
    if backend == "vanilla":
        v = x.get_plain_text(dst=0)  # CrypTen's own decoding, as stock users get it
        return v.double().cpu() if v is not None else None
    return reveal(x.share, x.bits, dst=0)


def plaintext_forward(model: str | Path, texts: list[str] | None = None, *, token_ids=None,
                      max_length: int = 128, on_overlong: str = "truncate", pad_to: str = "longest",
                      return_hidden: bool = False):  # fmt: skip
    """The float64 plaintext reference through the same architecture code (PlainOps)."""
    model_dir = resolve_model_dir(model)
    cfg = BertConfig.from_pretrained(model_dir)
    W = bert.prepare_weights(cfg, load_weights(model_dir, cfg))
    if token_ids is not None:
        ids = torch.as_tensor(token_ids, dtype=torch.long)
        mask = torch.ones_like(ids)
    else:
        if texts is None:
            raise InputError("give texts or token_ids")
        ids, mask = tokenize(load_tokenizer(model_dir), texts, max_length=max_length,
                             on_overlong=on_overlong, pad_to=pad_to)  # fmt: skip
    B, T = ids.shape
    ops = PlainOps()
    with torch.no_grad():
        hidden = bert.encoder(ops, cfg, W, ids.reshape(-1), mask.reshape(B, 1, 1, T), B, T)
        out = bert.classifier_logits(ops, cfg, W, hidden) if cfg.is_classifier else \
            bert.sentence_embedding(ops, hidden, mask.reshape(B, T, 1).double(), T)  # fmt: skip
    return (out, hidden) if return_hidden else out
