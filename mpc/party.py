"""One MPC party as its own OS process: ``smt party`` / ``python -m mpc.party``.

The same entry point runs on one machine (the launcher starts every party on loopback) or on
separate hosts: give each its role, rank, the world size and one rendezvous address
(``tcp://HOST:PORT``, reachable by all; the data owner's host is a natural choice).

Roles and ranks (p computing parties, dealer at rank p):

* ``data-owner`` (rank 0): holds the texts; tokenises locally; receives the outputs.
* ``model-owner`` (rank 1): holds the weights (a Hugging Face ``save_pretrained`` directory).
* ``helper`` (ranks 2..p-1): an extra computing party for 3-party runs; holds no input.
* ``dealer`` (rank p): CrypTen's trusted third party (TTP); deals correlated randomness,
  sees no input, weight or output.  CrypTen's "trusted first party" (party 0 makes its own
  Beaver triples, so it knows the masks) cannot be selected.

A party runs a *job* (``module:function``) with its own parameters (each party's hold only
that party's secret) and writes a JSON report: its cost and, for the data owner, the job's
result.  On error it writes the error's type and message and exits with status 1; the launcher
then stops the other parties.

Security (README "Security"): every link is mutually authenticated TLS 1.3 (mpc/transport.py);
``--identity-dir`` holds this role's key and the certificate of every role (``smt identity``).
Parameters arrive on standard input (``--params -``) or from a file of the operator's; started
by the launcher (``--from-launcher``) they arrive framed on a pipe that stays open, and the
party stops and deletes the session's files as soon as that pipe closes (its launcher died).
torch's random functions raise in a party process (mpc/prg.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLES = ("data-owner", "model-owner", "helper", "dealer")
log = logging.getLogger("smt.party")


@dataclass
class PartyContext:
    role: str
    rank: int
    world_size: int
    device: str
    params: dict[str, Any]
    meter: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="smt party", description=__doc__)
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--rank", required=True, type=int)
    p.add_argument("--world-size", required=True, type=int, help="computing parties (dealer excluded)")
    p.add_argument("--rendezvous", help="tcp://HOST:PORT: the data owner's TLS listening address (not with "
                   "services: their sessions get their links from mpc/service.py)")
    p.add_argument("--identity-dir", type=Path, help="this role's KEY and every role's certificate (smt identity create)")
    p.add_argument("--advertise", help="address the other parties reach this one at (default: the local "
                   "address that routes to the rendezvous); this party listens only there")
    p.add_argument("--connect-timeout", type=float, default=120.0, help="seconds to set up every link")
    p.add_argument("--job", default="mpc.session:inference_job", help="module:function to run")
    p.add_argument("--params", help="this party's parameters: a JSON file, or - for standard input")
    p.add_argument("--from-launcher", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--report", type=Path, help="where to write this party's JSON report")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--threads", type=int, default=1, help="torch threads for this party")
    p.add_argument("--provider", default="TTP", choices=["TTP"], help="correlated randomness (TTP only)")
    return p


def _check_role(role: str, rank: int, world_size: int) -> None:
    expected = {"data-owner": 0, "model-owner": 1, "dealer": world_size}
    if world_size < 2:
        raise SystemExit("--world-size must be at least 2 (data owner and model owner)")
    if role in expected and rank != expected[role]:
        raise SystemExit(f"role {role} must have rank {expected[role]} (got {rank})")
    if role == "helper" and not 2 <= rank < world_size:
        raise SystemExit(f"a helper's rank must be in 2..{world_size - 1} (got {rank})")


def _write(path: Path | None, payload: dict) -> None:
    if path is None:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)


def _tap_writer():
    """With SMT_WIRETAP=path (and SMT_TEST_HOOKS=1: tests only), append the raw bytes of everything
    this party receives.  Without SMT_TEST_HOOKS a stray SMT_WIRETAP is refused: the tap would put
    revealed outputs and opened values on disk."""
    target = os.environ.get("SMT_WIRETAP")
    if not target:
        return None
    if os.environ.get("SMT_TEST_HOOKS") != "1":
        from mpc.errors import ConfigurationError

        raise ConfigurationError("SMT_WIRETAP is set in a party's environment; it records every received byte "
                                 "and is for the test suite only (with SMT_TEST_HOOKS=1): unset it")  # fmt: skip
    log.warning("wiretap on: every received byte goes to %s (test hook)", target)
    import pickle

    import torch

    fh = open(target, "ab")  # noqa: SIM115 - lives as long as the process

    def tap(kind, payload):
        batched = isinstance(payload, list) and all(torch.is_tensor(t) for t in payload)
        items = payload if batched else [payload]
        for item in items:
            if torch.is_tensor(item):
                fh.write(item.detach().cpu().contiguous().numpy().tobytes())
            elif item is not None:
                fh.write(pickle.dumps(item))
        fh.flush()

    return tap


def _read_params(args) -> dict:
    if args.from_launcher:  # 8-byte length, then JSON, on a pipe the launcher keeps open
        head = _read_exact(0, 8)
        return json.loads(_read_exact(0, int.from_bytes(head, "big")))
    if args.params is None:
        return {}
    if args.params == "-":
        return json.loads(sys.stdin.read())
    return json.loads(Path(args.params).read_text())


def _read_exact(fd: int, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            raise SystemExit("the launcher closed the parameter pipe before sending this party's parameters")
        out += chunk
    return bytes(out)


def _watch_launcher(files: list[Path]) -> None:
    """When the launcher's pipe closes (it died), delete this session's files and exit at once."""
    import shutil
    import threading

    session_dir = os.environ.get("SMT_SESSION_DIR")

    def watch() -> None:
        while os.read(0, 4096):
            pass
        for f in files:
            with contextlib.suppress(OSError):
                f.unlink()
        if session_dir:
            shutil.rmtree(session_dir, ignore_errors=True)
        os._exit(3)

    threading.Thread(target=watch, daemon=True, name="smt-launcher-watch").start()


def _identity(args, params: dict):
    from mpc import identity
    from mpc.errors import ConfigurationError

    expected = identity.role_of_rank(args.rank, args.world_size)
    if "identity" in params:
        ident = identity.Identity.from_params(params.pop("identity"))
    elif args.identity_dir:
        ident = identity.load(expected, args.identity_dir)
    else:
        raise ConfigurationError(f"{expected} has no identity: pass --identity-dir DIR with {expected}.key and "
                                 "every role's certificate (smt identity create)")  # fmt: skip
    if ident.role != expected:
        raise ConfigurationError(f"identity is for {ident.role!r} but this party is {expected!r} (rank {args.rank})")
    seen: dict[str, str] = {}
    for r in range(args.world_size + 1):
        role = identity.role_of_rank(r, args.world_size)
        fp = ident.peer_fingerprint(role)  # every peer pinned, or a clear error
        if fp in seen:
            raise ConfigurationError(f"roles {seen[fp]} and {role} are configured with the same certificate {fp}; "
                                     "each role needs its own key (smt identity create)")  # fmt: skip
        seen[fp] = role
    return ident


def run(args: argparse.Namespace) -> int:
    _check_role(args.role, args.rank, args.world_size)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {args.role}[{args.rank}] %(levelname)s %(message)s"
    )
    params = _read_params(args)
    if args.from_launcher:
        _watch_launcher([p for p in (args.report, params.get("output")) if p])
    from mpc import tls_backend, transport

    service = params.pop("mesh", None)  # a session of a party service (mpc/service.py, mpc/client.py)
    if service is None:
        if not args.rendezvous:
            raise SystemExit("--rendezvous tcp://HOST:PORT is required")
        host, port = tls_backend.parse_rendezvous(args.rendezvous)
    else:
        host, port = "service.invalid", 1  # no rendezvous: links are dialled to and handed over by services
    os.environ.update(
        RANK=str(args.rank),
        WORLD_SIZE=str(args.world_size),
        RENDEZVOUS=f"{tls_backend.SCHEME}://{host}:{port}",
        DISTRIBUTED_BACKEND=tls_backend.BACKEND,
    )
    import torch

    torch.set_num_threads(args.threads)
    sys.setswitchinterval(float(os.environ.get("SMT_SWITCH_INTERVAL", "0.005")))
    from mpc._crypten import comm, crypten
    from mpc.meter import install
    from mpc.prg import forbid_torch_random

    crypten.cfg.mpc.provider = "TTP"  # never TFP: party 0 would know the Beaver masks
    forbid_torch_random()  # every secret random value comes from mpc.prg (AES-CTR, OS keys)
    t0 = time.perf_counter()
    try:
        tls_backend.check_secure_environment()
        if service is None:
            tls_backend.configure(transport.MeshConfig(
                rank=args.rank, parties=args.world_size, rendezvous=(host, port), identity=_identity(args, params),
                timeout=args.connect_timeout, advertise=args.advertise))  # fmt: skip
        else:
            import socket

            inbox = socket.socket(fileno=int(service["inbox_fd"])) if service.get("inbox_fd") is not None else None
            tls_backend.configure(transport.ServiceMeshConfig(
                rank=args.rank, parties=args.world_size, identity=_identity(args, params), session=service["session"],
                endpoints={int(r): (h, int(p)) for r, (h, p) in service["endpoints"].items()}, inbox=inbox,
                timeout=args.connect_timeout, open=service.get("open")))  # fmt: skip
        if args.role == "dealer":
            from mpc.dealer import serve

            _profiled(args, lambda: serve(service=service is not None))
            _write(args.report, {"role": args.role, "rank": args.rank, "seconds": time.perf_counter() - t0})
            return 0
        crypten.init()
        meter = install(comm.get(), tap=_tap_writer())
        ctx = PartyContext(args.role, args.rank, args.world_size, args.device, params, meter)
        module, _, name = args.job.partition(":")
        job = getattr(importlib.import_module(module), name)
        result = _profiled(args, lambda: job(ctx))
        cost = meter.report()
        cost["seconds"] = round(time.perf_counter() - t0, 4)
        crypten.uninit()
        _write(args.report, {"role": args.role, "rank": args.rank, "cost": cost, "result": result})
        return 0
    except Exception as err:  # reported to the launcher, which stops the other parties
        log.error("party failed: %s: %s", type(err).__name__, err)
        log.debug("%s", traceback.format_exc())
        traceback.print_exc(file=sys.stderr)
        _write(
            args.report,
            {"role": args.role, "rank": args.rank, "error": {"type": type(err).__name__, "message": str(err)}},
        )
        return 1
    finally:
        tls_backend.shutdown()


def _profiled(args, fn):
    profile = os.environ.get("SMT_PROFILE")  # a directory: cProfile stats per party (benchmarks)
    if not profile:
        return fn()
    import cProfile

    with cProfile.Profile() as prof:
        result = fn()
    prof.dump_stats(os.path.join(profile, f"{args.role}-{args.rank}.prof"))
    return result


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
