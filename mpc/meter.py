"""Cost accounting: rounds, bytes and seconds of an MPC session, per scope and per kind.

We count at the communicator, not from CrypTen's own statistics (which count an all-reduce as
two tensors whatever the party count and mix in the dealer's traffic):

* a **round** is one communication call among the computing parties (a batched call is one);
* **bytes sent** by this party: all-reduce of n bytes among p parties: 2 (p-1)/p * n (ring),
  i.e. n for two parties; broadcast from us: (p-1) n; reduce/gather/send to another: n;
  all-gather: (p-1) n; object messages: their pickled size;
* **dealer bytes**: what the dealer sends to party 0 (the other parties derive their
  correlated randomness from seeds they share with the dealer, so party 0 sees all of it).

Scopes (``with scope("layer.3")``) and tags (``with tag("truncation")``) attribute costs.
"""

from __future__ import annotations

import contextlib
import pickle
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

_BYTES = 8


@dataclass
class Counter:
    rounds: int = 0
    bytes: int = 0
    dealer_bytes: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "rounds": self.rounds,
            "bytes": self.bytes,
            "dealer_bytes": self.dealer_bytes,
            "seconds": round(self.seconds, 4),
        }


@dataclass
class Meter:
    total: Counter = field(default_factory=Counter)
    scopes: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    tags: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    components: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    _scope: list[str] = field(default_factory=list)
    _tag: list[str] = field(default_factory=list)
    _component: list[str] = field(default_factory=list)

    def add(self, *, rounds: int = 0, nbytes: int = 0, dealer: int = 0) -> None:
        targets = [self.total]
        if self._scope:
            targets.append(self.scopes[self._scope[0]])
        if self._tag:
            targets.append(self.tags[self._tag[-1]])
        if self._component:
            # truncation is its own component, whatever function asked for it
            name = "truncation" if (self._tag and self._tag[-1] == "truncation") else self._component[-1]
            targets.append(self.components[name])
        for c in targets:
            c.rounds += rounds
            c.bytes += nbytes
            c.dealer_bytes += dealer

    def reset(self) -> None:
        """Start counting afresh (one inference of a persistent model session)."""
        self.total = Counter()
        self.scopes = defaultdict(Counter)
        self.tags = defaultdict(Counter)
        self.components = defaultdict(Counter)

    def report(self) -> dict:
        return {
            **self.total.as_dict(),
            "per_scope": {k: v.as_dict() for k, v in self.scopes.items()},
            "per_component": {k: v.as_dict() for k, v in self.components.items()},
        }


_METER: list[Meter] = []


def current() -> Meter | None:
    return _METER[-1] if _METER else None


@contextlib.contextmanager
def scope(name: str) -> Iterator[None]:
    """Attribute costs (and wall seconds) of the block to a top-level scope, e.g. ``layer.3``."""
    m = current()
    if m is None:
        yield
        return
    nested = bool(m._scope)
    m._scope.append(name)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        m._scope.pop()
        if not nested:
            m.scopes[name].seconds += time.perf_counter() - t0


@contextlib.contextmanager
def component(name: str) -> Iterator[None]:
    """Attribute costs to a model component: linear, attention, softmax, gelu, layernorm...

    Wall seconds go to the outermost component block (a truncation's time counts to the
    component that asked for it; its rounds and bytes to "truncation")."""
    m = current()
    if m is None:
        yield
        return
    outer = not m._component
    m._component.append(name)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        m._component.pop()
        if outer:
            m.components[name].seconds += time.perf_counter() - t0


@contextlib.contextmanager
def tag(name: str) -> Iterator[None]:
    m = current()
    if m is None:
        yield
        return
    m._tag.append(name)
    try:
        yield
    finally:
        m._tag.pop()


def _nbytes(x) -> int:
    if isinstance(x, (list, tuple)):
        return sum(_nbytes(t) for t in x)
    if torch.is_tensor(x) or hasattr(x, "nelement"):  # CrypTen's CUDALongTensor too
        return x.nelement() * _BYTES
    return 0


def install(communicator, *, tap=None) -> Meter:
    """Wrap ``communicator``'s methods so that every exchange is counted (and optionally tapped).

    ``tap(direction, payload)`` receives every tensor or object this party receives, for the
    tests that check what each party can see.
    """
    meter = Meter()
    _METER.append(meter)
    p = communicator.get_world_size()
    rank = communicator.get_rank()
    main = communicator.main_group
    ttp_rank = p

    def wrap(name, count):
        original = getattr(communicator, name)

        def wrapper(*args, **kwargs):
            result = original(*args, **kwargs)
            count(result, *args, **kwargs)
            return result

        setattr(communicator, name, wrapper)

    def on_all_reduce(result, input, *a, **k):
        n = _nbytes(input)
        meter.add(rounds=1, nbytes=int(round(2 * (p - 1) / p * n)))
        if tap:
            tap("all_reduce", result)

    def on_reduce(result, input, dst, *a, **k):
        meter.add(rounds=1, nbytes=0 if dst == rank else _nbytes(input))
        if tap and result is not None:
            tap("reduce", result)

    def on_broadcast(result, input, src, group=None, **k):
        if group is not None and group is not main:  # the dealer's channel to party 0
            if src == ttp_rank:
                meter.add(dealer=_nbytes(input))
                if tap:
                    tap("dealer", input)
            return
        meter.add(rounds=1, nbytes=(p - 1) * _nbytes(input) if src == rank else 0)
        if tap and src != rank:
            tap("broadcast", input)

    def on_gather(result, tensor, dst, *a, **k):
        meter.add(rounds=1, nbytes=0 if dst == rank else _nbytes(tensor))
        if tap and dst == rank:
            tap("gather", result)

    def on_all_gather(result, tensor, *a, **k):
        meter.add(rounds=1, nbytes=(p - 1) * _nbytes(tensor))
        if tap:
            tap("all_gather", result)

    def on_send(result, tensor, dst, *a, **k):
        meter.add(rounds=1, nbytes=_nbytes(tensor))

    def on_recv(result, tensor, src=None, *a, **k):
        meter.add(rounds=1)
        if tap:
            tap("recv", tensor)

    def on_broadcast_obj(result, obj, src, group=None, **k):
        if group is not None and group is not main:
            return
        meter.add(rounds=1, nbytes=(p - 1) * len(pickle.dumps(obj)) if src == rank else 0)
        if tap and src != rank:
            tap("broadcast_obj", result)

    def on_send_obj(result, obj, dst, group=None, **k):
        if group is None or group is main:
            meter.add(rounds=1, nbytes=len(pickle.dumps(obj)))

    def on_recv_obj(result, src, group=None, **k):
        if group is None or group is main:
            meter.add(rounds=1)
            if tap:
                tap("recv_obj", result)

    wrap("all_reduce", on_all_reduce)
    wrap("reduce", on_reduce)
    wrap("broadcast", on_broadcast)
    wrap("gather", on_gather)
    wrap("all_gather", on_all_gather)
    wrap("send", on_send)
    wrap("recv", on_recv)
    wrap("broadcast_obj", on_broadcast_obj)
    wrap("send_obj", on_send_obj)
    wrap("recv_obj", on_recv_obj)
    return meter
