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

A party runs a *job* (``module:function``) with the parameters in its own ``--params`` file
(each party's file holds only that party's secret) and writes a JSON report: its cost and, for
the data owner, the job's result.  On error it writes the error's type and message and exits
with status 1; the launcher then stops the other parties.
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--rendezvous", required=True, help="tcp://HOST:PORT or file:///path")
    p.add_argument("--job", default="mpc.session:inference_job", help="module:function to run")
    p.add_argument("--params", type=Path, help="JSON file with this party's parameters")
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
    """With SMT_WIRETAP=path, append the raw bytes of everything this party receives."""
    target = os.environ.get("SMT_WIRETAP")
    if not target:
        return None
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


def run(args: argparse.Namespace) -> int:
    _check_role(args.role, args.rank, args.world_size)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {args.role}[{args.rank}] %(levelname)s %(message)s"
    )
    os.environ.update(
        RANK=str(args.rank),
        WORLD_SIZE=str(args.world_size),
        RENDEZVOUS=args.rendezvous,
        DISTRIBUTED_BACKEND="gloo",
    )
    import torch

    torch.set_num_threads(args.threads)
    from mpc._crypten import comm, crypten, ttp_provider
    from mpc.meter import install
    from mpc.protocols import install_dealer_functions

    crypten.cfg.mpc.provider = "TTP"  # never TFP: party 0 would know the Beaver masks
    params = json.loads(args.params.read_text()) if args.params else {}
    t0 = time.perf_counter()
    try:
        if args.role == "dealer":
            install_dealer_functions()
            profile = os.environ.get("SMT_PROFILE")
            if profile:
                import cProfile

                with cProfile.Profile() as prof:
                    ttp_provider.TTPServer()
                prof.dump_stats(os.path.join(profile, f"{args.role}-{args.rank}.prof"))
            else:
                ttp_provider.TTPServer()
            _write(args.report, {"role": args.role, "rank": args.rank, "seconds": time.perf_counter() - t0})
            return 0
        crypten.init()
        meter = install(comm.get(), tap=_tap_writer())
        ctx = PartyContext(args.role, args.rank, args.world_size, args.device, params, meter)
        module, _, name = args.job.partition(":")
        job = getattr(importlib.import_module(module), name)
        profile = os.environ.get("SMT_PROFILE")  # a directory: cProfile stats per party (benchmarks)
        if profile:
            import cProfile

            with cProfile.Profile() as prof:
                result = job(ctx)
            prof.dump_stats(os.path.join(profile, f"{args.role}-{args.rank}.prof"))
        else:
            result = job(ctx)
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


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
