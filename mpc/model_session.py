"""A persistent model session: set up once between one data owner and the party services, then
reused by every inference until its lifetime or count runs out (the job
``mpc.model_session:model_session_job`` of each computing party; the dealer serves as usual).

Set-up, once per model session:

1. the model owner reads its weights and broadcasts the *public* architecture and tokenizer
   (tokenizer.json: the data owner needs no copy of the model's files);
2. the parties agree on architecture, backend and options (ProtocolError naming the difference);
3. the model owner secret-shares its weights (CrypTen's pseudo-random zero sharing: no traffic);
4. for every weight matrix the dealer deals a uniform mask b and the parties open W - b once
   (``ReusedWeightMask``): the embedding table (V x H: ~94 MB per party for MiniLM) and every
   linear layer.

Each inference then costs only its own openings: the data owner tokenises its texts, broadcasts
the command and the public shape (B, T), the encoder runs on shares with the session's weight
masks, and the outputs are revealed to the data owner only.  After each inference every party
says whether it is draining (SIGTERM to its service) or past the service's limits; the data
owner then closes the model session and the next inference opens a new one.

Security of the reuse (also in ``ReusedWeightMask``): the weights are shared once and never
change within a model session, and each mask is bound to the one share tensor it was opened for;
every other opened value is masked by fresh dealer randomness.  So what the parties see across
all inferences of a session is exactly what they would see in one session over the stacked
batches.  A new model session re-shares the weights with fresh masks.  Revealed, as before: the
architecture (public), each inference's (B, T) to every party.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import time
from pathlib import Path

import numpy as np
import torch

from mpc import bert
from mpc._crypten import comm
from mpc.backends import SecureOps
from mpc.config import BertConfig, load_weights, resolve_model_dir
from mpc.errors import InputError, ProtocolError
from mpc.meter import scope
from mpc.protocols import ReusedWeightMask
from mpc.session import _agree, _share_weights, encode_and_reveal, exchange, tokenize

_DRAIN = {"busy": False, "requested": False}


class Drained(Exception):
    """SIGTERM reached an idle party of a model session: it leaves at once."""


def install_drain_handler() -> None:
    """SIGTERM: an idle party leaves at once; a busy one finishes its inference first."""

    def on_term(signum, frame):
        _DRAIN["requested"] = True
        if not _DRAIN["busy"]:
            raise Drained()

    signal.signal(signal.SIGTERM, on_term)


# ------------------------------------------------------------------------------------------
# framed messages on the data owner's control channel (a socketpair with mpc/client.py)


def send_frame(sock: socket.socket, header: dict, payload: bytes = b"") -> None:
    head = json.dumps(header).encode()
    sock.sendall(struct.pack("!IQ", len(head), len(payload)) + head + payload)


def recv_frame(sock: socket.socket) -> tuple[dict, bytes] | None:
    head = _recv_exact(sock, 12)
    if head is None:
        return None
    n_head, n_payload = struct.unpack("!IQ", head)
    header = _recv_exact(sock, n_head)
    payload = _recv_exact(sock, n_payload) if n_payload else b""
    if header is None or payload is None:
        return None
    return json.loads(header), payload


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


# ------------------------------------------------------------------------------------------
# set-up


def weight_matrices(cfg: BertConfig) -> list[str]:
    """The weights that appear as the right operand of a product (each gets a reused mask)."""
    names = ["word"]
    for n in range(cfg.num_hidden_layers):
        names += [f"l{n}.{w}" for w in ("qkv_w", "out_w", "ff1_w", "ff2_w")]
    if cfg.is_classifier:
        names += ["pool_w", "cls_w"]
    return names


def _setup(ctx) -> tuple[BertConfig, dict, SecureOps, str]:
    p = ctx.params
    prepared = tokenizer_json = None
    if ctx.role == "model-owner":
        model_dir = resolve_model_dir(p["model"])
        cfg = BertConfig.from_pretrained(model_dir)
        prepared = bert.prepare_weights(cfg, load_weights(model_dir, cfg))
        tok_path = Path(model_dir) / "tokenizer.json"
        if not tok_path.is_file():
            raise InputError(f"no tokenizer.json in {model_dir}; the model owner serves the public tokenizer with the model")
        tokenizer_json = tok_path.read_text()
    public = comm.get().broadcast_obj(
        {"config": cfg.to_public_dict(), "tokenizer": tokenizer_json, "name": p.get("model_name")}
        if ctx.role == "model-owner" else None, 1)  # fmt: skip
    cfg = BertConfig.from_public_dict(public["config"])
    if ctx.role == "data-owner" and p.get("model_name") not in (None, public["name"]):
        raise ProtocolError(f"the model owner serves {public['name']!r}, not {p.get('model_name')!r}")
    _agree(ctx, {"config": public["config"], "backend": "secure", "world_size": ctx.world_size,
                 "mode": "model-session"})  # fmt: skip
    with scope("setup"):
        W = _share_weights(ctx, cfg, prepared, "secure", ctx.device)
        del prepared
        masks = {id(W[name].share): ReusedWeightMask(W[name].share) for name in weight_matrices(cfg)}
    return cfg, W, SecureOps(weight_masks=masks), public["tokenizer"]


def dealer_draining(device) -> bool:
    """Party 0 asks the dealer whether it was told to stop (smt_status); it then counts as idle."""
    from mpc._crypten import ttp_provider
    from mpc.protocols import plain

    return bool(plain(ttp_provider.TTPClient.get().ttp_request("smt_status", device))[0].item())


def dealer_status(self):  # runs in the dealer (CrypTen's TTPServer), after each inference
    return torch.tensor([1 if _DRAIN["requested"] else 0], dtype=torch.long)


def _peers_gone() -> bool:
    from mpc import tls_backend

    return bool(tls_backend.mesh().failed_peers())


# ------------------------------------------------------------------------------------------
# the job of every computing party


def model_session_job(ctx) -> dict | None:
    """Set up once, then serve inferences until the data owner closes the session."""
    install_drain_handler()
    p = ctx.params
    limit_seconds = float(p.get("lifetime_seconds") or 0)
    limit_count = int(p.get("max_inferences") or 0)
    started = time.monotonic()
    chan = socket.socket(fileno=int(p["control_fd"])) if ctx.role == "data-owner" else None
    count = 0
    try:
        cfg, W, ops, tokenizer_json = _setup(ctx)
        setup_cost = ctx.meter.report() if ctx.meter else {}
        tokenizer = None
        if chan is not None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_str(tokenizer_json)
            send_frame(chan, {"ok": True, "event": "ready", "kind": "classification" if cfg.is_classifier else "embedding",
                              "setup_cost": setup_cost, "seconds": round(time.monotonic() - started, 3)})  # fmt: skip
        while True:
            request = None
            if chan is not None:
                request = _next_request(chan, tokenizer, cfg)
                if request["command"]["op"] != "close" and _peers_gone():
                    # a service ended the session while it was idle (drain, restart): nothing
                    # was computed, so the client may open a new session and ask again
                    send_frame(chan, {"ok": False, "error": {"type": "SessionEnded",
                                                             "message": "a party service ended the model session"}})  # fmt: skip
                    return {"inferences": count, "ended_by_peer": True}
            command = comm.get().broadcast_obj(request["command"] if request else None, 0)
            if command["op"] == "close":
                return {"inferences": count}
            _DRAIN["busy"] = True
            if ctx.meter:
                ctx.meter.reset()
            t0 = time.perf_counter()
            B, T = command["batch"]
            if T > cfg.max_position_embeddings:
                raise InputError(f"padded length {T} exceeds the model's {cfg.max_position_embeddings} positions")
            ids, mask = (request["ids"], request["mask"]) if request else (None, None)
            values, hidden_plain = encode_and_reveal(ctx, ops, cfg, W, ids, mask, B, T, backend="secure", cmp="dealer",
                                                     return_hidden=bool(command.get("return_hidden")))  # fmt: skip
            count += 1
            expired = bool((limit_seconds and time.monotonic() - started > limit_seconds)
                           or (limit_count and count >= limit_count))  # fmt: skip
            dealer_leaving = ctx.rank == 0 and dealer_draining(ctx.device)
            statuses = exchange(ctx, {"role": ctx.role, "renew": _DRAIN["requested"] or expired,
                                       "dealer": dealer_leaving})  # fmt: skip
            _DRAIN["busy"] = False
            renew = [s["role"] for s in statuses if s["renew"]] + (["dealer"] if statuses[0]["dealer"] else [])
            if chan is not None:
                cost = ctx.meter.report() if ctx.meter else {}
                cost["seconds"] = round(time.perf_counter() - t0, 4)
                _reply(chan, values, hidden_plain, cfg, cost, renew)
            if renew:
                return {"inferences": count, "renewed_by": renew}
            if _DRAIN["requested"]:
                raise Drained()
    except Drained:
        return {"inferences": count, "drained": True}
    finally:
        _DRAIN["busy"] = False
        if chan is not None:
            chan.close()


def _next_request(chan: socket.socket, tokenizer, cfg: BertConfig) -> dict:
    """The client's next request, tokenised; bad input is answered here and never reaches the
    other parties (the session stays usable)."""
    while True:
        got = recv_frame(chan)
        if got is None or got[0].get("op") == "close":
            return {"command": {"op": "close"}}
        req, _ = got
        try:
            if req.get("token_ids") is not None:
                ids = torch.tensor(req["token_ids"], dtype=torch.long)
                mask = torch.ones_like(ids)
            else:
                ids, mask = tokenize(tokenizer, req["texts"], max_length=int(req.get("max_length", 128)),
                                     on_overlong=req.get("on_overlong", "truncate"), pad_to=req.get("pad_to", "longest"))  # fmt: skip
            if ids.shape[1] > cfg.max_position_embeddings:
                raise InputError(f"padded length {ids.shape[1]} exceeds the model's {cfg.max_position_embeddings} positions")
        except InputError as err:
            send_frame(chan, {"ok": False, "error": {"type": "InputError", "message": str(err)}})
            continue
        command = {"op": "infer", "batch": list(ids.shape), "return_hidden": bool(req.get("return_hidden"))}
        return {"command": command, "ids": ids, "mask": mask}


def _reply(chan, values, hidden, cfg: BertConfig, cost: dict, renew: list[str]) -> None:
    out = values.numpy().astype(np.float64)
    payload = out.tobytes()
    header = {"ok": True, "event": "result", "kind": "classification" if cfg.is_classifier else "embedding",
              "shape": list(out.shape), "cost": cost, "renew": renew}  # fmt: skip
    if hidden is not None:
        h = hidden.numpy().astype(np.float64)
        header["hidden_shape"] = list(h.shape)
        payload += h.tobytes()
    send_frame(chan, header, payload)
