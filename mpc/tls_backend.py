"""torch.distributed over our TLS mesh: the ``smt_tls`` backend and the ``smt-tls://`` rendezvous.

CrypTen (and our protocols) talk through ``torch.distributed``: ``init_process_group``,
``new_group``, ``send``/``recv``/``isend``/``irecv``, ``broadcast``, ``all_reduce``, ``reduce``,
``all_gather``, ``gather``, ``scatter``, ``barrier``.  This module implements exactly those as a
Python ``ProcessGroup`` whose every message is a frame on ``mpc.transport.Mesh``: one
authenticated TLS 1.3 link per ordered pair of ranks.  ``install()`` registers the backend and
the rendezvous scheme; ``mpc/party.py`` selects them, and nothing can select gloo or a plaintext
TCP store instead (``check_secure_environment``).

Semantics: a send completes when its bytes are handed to TLS (a reader thread per link drains
every link, so sends never wait on the peer's program); a receive completes in ``wait()``,
matched to messages in posting order per (peer, group, tag).  Collectives are built from
point-to-point messages on a reserved tag per kind, in one round (every rank sends to every rank
that needs its data), as gloo does for these small worlds.
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import numpy as np
import torch
import torch.distributed as dist

from mpc import transport

BACKEND = "smt_tls"
SCHEME = "smt-tls"
_TAG_BCAST, _TAG_REDUCE, _TAG_GATHER, _TAG_SCATTER, _TAG_BARRIER = (-(2**62) - k for k in range(5))

_STATE: dict = {"config": None, "mesh": None}


def configure(cfg: transport.MeshConfig | transport.ServiceMeshConfig) -> None:
    """This process's mesh settings; the mesh is built inside ``init_process_group``."""
    _STATE["config"] = cfg


def mesh() -> transport.Mesh:
    m = _STATE["mesh"]
    if m is None:
        raise transport.TransportError("the TLS mesh is not initialised (crypten.init() has not run)")
    return m


def shutdown() -> None:
    m = _STATE.pop("mesh", None)
    _STATE["mesh"] = None
    if m is not None:
        m.close()


def _bytes_of(t: torch.Tensor) -> memoryview:
    arr = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
    return memoryview(arr)  # type: ignore[arg-type]


def _fill(t: torch.Tensor, data: bytearray, who: str) -> None:
    expected = t.numel() * t.element_size()
    if len(data) != expected:
        raise transport.TransportError(f"{who} sent {len(data)} bytes where {expected} were expected "
                                       f"({tuple(t.shape)} {t.dtype}); the parties are out of step")  # fmt: skip
    src = torch.from_numpy(np.frombuffer(data, dtype=np.uint8)).view(t.dtype).reshape(t.shape)
    t.copy_(src)


class _Done(dist.Work):
    """A finished operation (sends, and collectives whose receives ran already)."""

    def __init__(self, result=None, then=None):
        super().__init__()
        self._then = then
        self._result = result
        self._done = then is None

    def wait(self, timeout: timedelta | None = None) -> bool:
        if not self._done:
            self._then()
            self._done = True
        return True

    def is_completed(self) -> bool:
        return self._done

    def is_success(self) -> bool:
        return True

    def exception(self):
        return None

    def result(self):
        return self._result or []

    def get_future(self) -> torch.futures.Future:
        self.wait()
        fut: torch.futures.Future = torch.futures.Future()
        fut.set_result(self._result or [])
        return fut


_REDUCE = {
    "SUM": lambda a, b: a.add_(b),
    "PRODUCT": lambda a, b: a.mul_(b),
    "MIN": lambda a, b: torch.minimum(a, b, out=a),
    "MAX": lambda a, b: torch.maximum(a, b, out=a),
    "BAND": lambda a, b: a.bitwise_and_(b),
    "BOR": lambda a, b: a.bitwise_or_(b),
    "BXOR": lambda a, b: a.bitwise_xor_(b),
}


def _op_name(op) -> str:
    for name in _REDUCE:
        if op == getattr(dist.ReduceOp, name):
            return name
    raise transport.TransportError(f"reduce operation {op} is not supported by the TLS backend")


class TlsProcessGroup(dist.ProcessGroup):
    """One process group (a channel of the mesh) for the ranks ``global_ranks`` (group order)."""

    def __init__(self, rank: int, size: int, global_ranks: list[int], group_id: str, timeout: timedelta):
        super().__init__(rank, size)  # type: ignore[call-arg]
        self._group_id = group_id
        self._ranks = global_ranks
        self._channel = int.from_bytes(hashlib.sha256(group_id.encode()).digest()[:8], "big") >> 1
        self._timeout = timeout.total_seconds() if timeout else None
        self._mesh = mesh()

    @property
    def group_name(self) -> str:  # type: ignore[override]  # torch's destroy_process_group reads it
        return self._group_id

    def getBackendName(self) -> str:  # noqa: N802 - torch's name
        return BACKEND

    def _send(self, group_peer: int, tag: int, t: torch.Tensor) -> None:
        self._mesh.send(self._ranks[group_peer], self._channel, tag, _bytes_of(t))

    def _post(self, group_peer: int, tag: int):
        return self._mesh.post_recv(self._ranks[group_peer], self._channel, tag)

    def _take(self, ticket, into: torch.Tensor) -> None:
        _fill(into, self._mesh.wait_recv(ticket, self._timeout), f"rank {ticket[0]}")

    # -- point to point ----------------------------------------------------------------------
    def send(self, tensors, dst, tag=0):
        for t in tensors:
            self._send(dst, tag, t)
        return _Done()

    def recv(self, tensors, src, tag=0):
        tickets = [self._post(src, tag) for _ in tensors]
        return _Done(tensors, lambda: [self._take(k, t) for k, t in zip(tickets, tensors, strict=True)])

    # -- collectives ---------------------------------------------------------------------------
    def _others(self):
        return [r for r in range(self.size()) if r != self.rank()]

    def broadcast(self, tensors, opts):
        root = opts.rootRank
        if self.rank() == root:
            for peer in self._others():
                for t in tensors:
                    self._send(peer, _TAG_BCAST, t)
            return _Done(tensors)
        tickets = [self._post(root, _TAG_BCAST) for _ in tensors]
        return _Done(tensors, lambda: [self._take(k, t) for k, t in zip(tickets, tensors, strict=True)])

    def _reduce_into(self, tensors, sources, op_name):
        """Reduce in group-rank order (0, 1, ...) on every rank, so floating-point results agree."""
        tickets = {src: [self._post(src, _TAG_REDUCE) for _ in tensors] for src in sources}

        def finish():
            for i, t in enumerate(tensors):
                own = t.clone()
                acc = None
                for p in range(self.size()):
                    if p == self.rank():
                        v = own
                    elif p in tickets:
                        v = torch.empty(t.shape, dtype=t.dtype)
                        self._take(tickets[p][i], v)
                        v = v.to(t.device)
                    else:
                        continue
                    acc = v.clone() if acc is None else _REDUCE[op_name](acc, v)
                t.copy_(acc)
        return finish

    def allreduce(self, tensors, opts):
        op = _op_name(opts.reduceOp)
        for peer in self._others():
            for t in tensors:
                self._send(peer, _TAG_REDUCE, t)
        return _Done(tensors, self._reduce_into(tensors, self._others(), op))

    def reduce(self, tensors, opts):
        op, root = _op_name(opts.reduceOp), opts.rootRank
        if self.rank() != root:
            for t in tensors:
                self._send(root, _TAG_REDUCE, t)
            return _Done(tensors)
        return _Done(tensors, self._reduce_into(tensors, self._others(), op))

    def _collect(self, output_tensors, input_tensors) -> _Done:
        """output_tensors[i][p] = rank p's input_tensors[i], this rank's own copied in place."""
        tickets = {p: [self._post(p, _TAG_GATHER) for _ in input_tensors] for p in self._others()}

        def finish():
            for i, t in enumerate(input_tensors):
                for p in range(self.size()):
                    if p == self.rank():
                        output_tensors[i][p].copy_(t)
                    else:
                        self._take(tickets[p][i], output_tensors[i][p])
        return _Done(output_tensors, finish)

    def allgather(self, output_tensors, input_tensors, opts=None):
        for peer in self._others():
            for t in input_tensors:
                self._send(peer, _TAG_GATHER, t)
        return self._collect(output_tensors, input_tensors)

    def gather(self, output_tensors, input_tensors, opts):
        root = opts.rootRank
        if self.rank() != root:
            for t in input_tensors:
                self._send(root, _TAG_GATHER, t)
            return _Done()
        return self._collect(output_tensors, input_tensors)

    def scatter(self, output_tensors, input_tensors, opts):
        root = opts.rootRank
        if self.rank() == root:
            for i, out in enumerate(output_tensors):
                for p in range(self.size()):
                    if p == root:
                        out.copy_(input_tensors[i][p])
                    else:
                        self._send(p, _TAG_SCATTER, input_tensors[i][p])
            return _Done(output_tensors)
        tickets = [self._post(root, _TAG_SCATTER) for _ in output_tensors]
        return _Done(output_tensors, lambda: [self._take(k, t) for k, t in zip(tickets, output_tensors, strict=True)])

    def barrier(self, opts=None):
        token = torch.zeros(1, dtype=torch.uint8)
        for peer in self._others():
            self._send(peer, _TAG_BARRIER, token)
        tickets = [self._post(p, _TAG_BARRIER) for p in self._others()]
        return _Done(None, lambda: [self._take(k, torch.empty(1, dtype=torch.uint8)) for k in tickets])


def _create(opts, backend_options=None) -> TlsProcessGroup:
    """torch's factory (extended API): the default group builds the mesh; subgroups reuse it."""
    global_ranks = list(opts.global_ranks_in_group) or list(range(opts.group_size))
    if _STATE["mesh"] is None:
        cfg = _STATE["config"]
        if cfg is None:
            raise transport.TransportError("the TLS backend was selected without mpc.tls_backend.configure()")
        if cfg.rank != opts.group_rank or cfg.world != opts.group_size:
            raise transport.TransportError(f"rank/world ({opts.group_rank}/{opts.group_size}) differ from the "
                                           f"configured mesh ({cfg.rank}/{cfg.world})")  # fmt: skip
        _STATE["mesh"] = cfg.connect()
    return TlsProcessGroup(opts.group_rank, opts.group_size, global_ranks, str(opts.group_id), opts.timeout)


def _rendezvous(url: str, timeout=None, **kwargs):
    """``smt-tls://HOST:PORT``: the mesh is the rendezvous, so torch only gets a local store."""
    query = parse_qs(urlparse(url).query)
    rank = int(kwargs.get("rank", query.get("rank", ["-1"])[0]))
    world = int(kwargs.get("world_size", query.get("world_size", ["-1"])[0]))
    yield dist.HashStore(), rank, world


def parse_rendezvous(url: str) -> tuple[str, int]:
    u = urlparse(url)
    if u.scheme not in ("tcp", SCHEME) or not u.hostname or not u.port:
        raise transport.TransportError(f"rendezvous must be tcp://HOST:PORT (got {url!r})")
    return u.hostname, u.port


def install() -> None:
    if BACKEND.upper() not in dist.Backend._plugins:
        dist.Backend.register_backend(BACKEND, _create, extended_api=True, devices=["cpu", "cuda"])
    import importlib

    rdzv = importlib.import_module("torch.distributed.rendezvous")  # the module, not the function

    if SCHEME not in rdzv._rendezvous_handlers:
        rdzv.register_rendezvous_handler(SCHEME, _rendezvous)


def check_secure_environment() -> None:
    """Refuse to run with a transport other than ours (no insecure mode can be selected)."""
    backend = os.environ.get("DISTRIBUTED_BACKEND")
    url = os.environ.get("RENDEZVOUS", "")
    if backend != BACKEND or not url.startswith(SCHEME + "://"):
        raise transport.TransportError(f"refusing transport {backend!r} with rendezvous {url!r}: parties talk only "
                                       f"over mutually authenticated TLS ({BACKEND}, {SCHEME}://)")  # fmt: skip
