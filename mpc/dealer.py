"""The dealer's request loop: an allow-list of functions with size limits.

CrypTen's ``TTPServer`` runs ``getattr(self, message["function"])(*args, **kwargs)`` for
whatever party 0 sends, and allocates whatever sizes it asks for.  ``serve()`` runs the same
loop with every request checked first (``check_request``): the function must be one the engine
uses, every size a short tuple of non-negative integers with at most ``max_elements`` elements,
every other argument of the expected type.  A bad request raises ``DealerRequestError``, which
ends the session (the dealer exits non-zero; the launcher names it and stops the others).
"""

from __future__ import annotations

import logging
import math
import os

import torch

from mpc.errors import DealerRequestError

log = logging.getLogger("smt.dealer")

MAX_ELEMENTS = int(os.environ.get("SMT_DEALER_MAX_ELEMENTS", str(1 << 28)))  # 2 GiB of int64 per tensor
_MAX_BATCH = 4096
_ADDITIVE_OPS = {"mul", "matmul", "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"}
_CONV_KWARGS = {"stride", "padding", "dilation", "groups"}


def _size(v, what: str) -> tuple[int, ...]:
    if not isinstance(v, (tuple, list, torch.Size)) or len(v) > 8:
        raise DealerRequestError(f"{what} must be a tuple of at most 8 dimensions, got {type(v).__name__}")
    dims = tuple(v)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise DealerRequestError(f"{what} must hold non-negative integers, got {dims!r}")
    if math.prod(dims) > MAX_ELEMENTS:
        raise DealerRequestError(f"{what} {dims} has {math.prod(dims)} elements; the dealer's limit is "
                                 f"{MAX_ELEMENTS} (SMT_DEALER_MAX_ELEMENTS)")  # fmt: skip
    return dims


def _int(v, what: str, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise DealerRequestError(f"{what} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def _key(v, what: str):
    if not isinstance(v, (str, int)) or isinstance(v, bool) or (isinstance(v, str) and len(v) > 200):
        raise DealerRequestError(f"{what} must be a short string or integer key, got {type(v).__name__}")
    return v


def _n(v, what):
    return _int(v, what, 0, MAX_ELEMENTS)


# name -> check(args) for each positional signature; kwargs only where listed
_CHECKS = {
    "additive": lambda a: (_size(a[0], "size0"), _size(a[1], "size1"), _op(a[2])),
    "square": lambda a: (_size(a[0], "size"),),
    "binary": lambda a: (_size(a[0], "size0"), _size(a[1], "size1")),
    "wraps": lambda a: (_size(a[0], "size"),),
    "B2A": lambda a: (_size(a[0], "size"),),
    "smt_trunc": lambda a: (_size(a[0], "size"), _int(a[1], "divisor", 1, 2**62), *(_flag(x) for x in a[2:3])),
    "smt_mtriple": lambda a: (_size(a[0], "size0"), _size(a[1], "size1")),
    "smt_wmask": lambda a: (_size(a[0], "size"), _key(a[1], "key")),
    "smt_wtriple": lambda a: (_size(a[0], "size"), _key(a[1], "key")),
    "smt_wfree": lambda a: (_key(a[0], "key"),),
    "smt_cmp_prep": lambda a: (_n(a[0], "n"), _int(a[1], "k", 2, 64), *(_int(x, "fuzz", 0, 62) for x in a[2:3])),
    "smt_cmp_answer": lambda a: (_n(a[0], "n"), _int(a[1], "m", 1, 64)),
    "smt_status": lambda a: (),
}
_ARITY = {"additive": (3, 3), "square": (1, 1), "binary": (2, 2), "wraps": (1, 1), "B2A": (1, 1),
          "smt_trunc": (2, 3), "smt_mtriple": (2, 2), "smt_wmask": (2, 2), "smt_wtriple": (2, 2),
          "smt_wfree": (1, 1), "smt_cmp_prep": (2, 3), "smt_cmp_answer": (2, 2), "smt_status": (0, 0)}  # fmt: skip
BATCHABLE = set(_CHECKS) - {"smt_cmp_answer", "smt_status"}


def _op(v):
    if v not in _ADDITIVE_OPS:
        raise DealerRequestError(f"additive triple for operation {v!r} is not allowed (allowed: {sorted(_ADDITIVE_OPS)})")
    return v


def _flag(v):
    if not isinstance(v, bool):
        raise DealerRequestError(f"flag must be a bool, got {v!r}")
    return v


def _check_call(name, args, kwargs, *, inner: bool = False) -> None:
    allowed = BATCHABLE if inner else set(_CHECKS) | {"smt_batch"}
    if not isinstance(name, str) or name not in allowed:
        raise DealerRequestError(f"the dealer does not serve {name!r}; allowed: {sorted(allowed)}")
    if not isinstance(args, (tuple, list)):
        raise DealerRequestError(f"arguments of {name} must be a tuple")
    if name == "smt_batch":
        if len(args) != 1 or not isinstance(args[0], (list, tuple)) or len(args[0]) > _MAX_BATCH:
            raise DealerRequestError(f"smt_batch takes one list of at most {_MAX_BATCH} requests")
        for item in args[0]:
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise DealerRequestError("each smt_batch item must be (name, args)")
            _check_call(item[0], item[1], {}, inner=True)
        return
    lo, hi = _ARITY[name]
    if not lo <= len(args) <= hi:
        raise DealerRequestError(f"{name} takes {lo}..{hi} arguments, got {len(args)}")
    _CHECKS[name](tuple(args))
    if kwargs:
        if name != "additive" or not set(kwargs) <= _CONV_KWARGS:
            raise DealerRequestError(f"{name} takes no keyword arguments {sorted(kwargs)}")
        for k, v in kwargs.items():
            if not (isinstance(v, int) or (isinstance(v, (tuple, list)) and all(isinstance(x, int) for x in v) and len(v) <= 3)):
                raise DealerRequestError(f"keyword {k} of {name} must be an int or a short tuple of ints")


def check_request(message) -> tuple[str, str, tuple, dict]:
    """(function, device, args, kwargs) of a well-formed request, or DealerRequestError."""
    if not isinstance(message, dict) or set(message) != {"function", "device", "args", "kwargs"}:
        raise DealerRequestError("a dealer request must be a dict with function, device, args and kwargs")
    device = message["device"] or "cpu"
    if not isinstance(device, str) or not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
        raise DealerRequestError(f"device must be cpu or cuda[:N], got {device!r}")
    kwargs = message["kwargs"]
    if not isinstance(kwargs, dict):
        raise DealerRequestError("kwargs must be a dict")
    _check_call(message["function"], message["args"], kwargs)
    return message["function"], device, tuple(message["args"]), kwargs


def serve(*, service: bool = False) -> None:
    """Run the dealer for one session (rank = number of computing parties) until party 0 ends it.

    As a service's session (``service``): SIGTERM ends it at once between two inferences of a
    model session (after an ``smt_status`` answer), else after the running inference."""
    from mpc._crypten import comm, crypten, ttp_provider
    from mpc.model_session import _DRAIN, Drained, install_drain_handler
    from mpc.protocols import install_dealer_functions

    if service:
        _DRAIN["busy"] = True  # set-up counts as busy; smt_status marks the idle points
        install_drain_handler()
        try:
            return _serve_loop(comm, crypten, ttp_provider, install_dealer_functions, _DRAIN)
        except Drained:
            log.info("dealer: drained (SIGTERM between inferences)")
            return None
    return _serve_loop(comm, crypten, ttp_provider, install_dealer_functions, None)


def _serve_loop(comm, crypten, ttp_provider, install_dealer_functions, drain) -> None:
    install_dealer_functions()
    crypten.init()
    server = object.__new__(ttp_provider.TTPServer)  # CrypTen's __init__ would run its unchecked loop
    server.ttp_group = comm.get().ttp_group
    server.comm_group = comm.get().ttp_comm_group
    server.device = "cpu"
    server._setup_generators()
    ttp_rank = comm.get().get_ttp_rank()
    while True:
        message = comm.get().recv_obj(0, server.ttp_group)
        if drain is not None:
            drain["busy"] = True
        if message == "terminate":
            log.info("dealer: session ended by the data owner")
            return
        function, device, args, kwargs = check_request(message)
        server.device = device
        result = getattr(server, function)(*args, **kwargs)
        comm.get().send_obj(result.size(), 0, server.ttp_group)
        comm.get().broadcast(result, ttp_rank, server.comm_group)
        if drain is not None and function == "smt_status":
            drain["busy"] = False  # between two inferences: SIGTERM may end the session now
