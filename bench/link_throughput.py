"""Our authenticated links (mpc/transport.py) beside plaintext gloo, two processes on loopback.

    python bench/link_throughput.py [--mb 32] [--rounds 2000]

Per transport: microseconds per small-message round trip, and MB/s per direction when both
sides send a large message at once (an opening).  gloo is the plaintext transport the engine
used before the secure links; it is measured here only as the reference.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _ours(rank: int, port: int, ids: dict, q, mb: int, rounds: int) -> None:
    from mpc import identity, transport

    cfg = transport.MeshConfig(rank=rank, parties=1, rendezvous=("127.0.0.1", port),
                               identity=ids[identity.role_of_rank(rank, 1)], timeout=30)  # fmt: skip
    m = transport.connect_mesh(cfg)
    other, small = 1 - rank, b"x" * 64
    t0 = time.perf_counter()
    for _ in range(rounds):
        if rank == 0:
            m.send(other, 1, 0, small)
            m.recv(other, 1, 0)
        else:
            m.recv(other, 1, 0)
            m.send(other, 1, 0, small)
    t1 = time.perf_counter()
    big = os.urandom(mb << 20)
    for _ in range(10):
        m.send(other, 2, 0, big)
        m.recv(other, 2, 0)
    q.put(("ours", rank, (t1 - t0) / rounds * 1e6, 10 * mb / (time.perf_counter() - t1)))
    m.close()


def _gloo(rank: int, port: int, q, mb: int, rounds: int) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    other, small = 1 - rank, torch.zeros(8, dtype=torch.int64)
    t0 = time.perf_counter()
    for _ in range(rounds):
        if rank == 0:
            dist.send(small, other)
            dist.recv(small, other)
        else:
            dist.recv(small, other)
            dist.send(small, other)
    t1 = time.perf_counter()
    big = torch.zeros((mb << 20) // 8, dtype=torch.int64)
    out = torch.empty_like(big)
    for _ in range(10):
        req = dist.isend(big, other)
        dist.recv(out, other)
        req.wait()
    q.put(("gloo", rank, (t1 - t0) / rounds * 1e6, 10 * mb / (time.perf_counter() - t1)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=int, default=32)
    p.add_argument("--rounds", type=int, default=2000)
    args = p.parse_args()
    from mpc import identity
    from mpc.launcher import free_port

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    ids = identity.throwaway(["data-owner", "model-owner"])
    results = []
    for name in ("ours", "gloo"):
        port = free_port()
        procs = [ctx.Process(target=_ours, args=(r, port, ids, q, args.mb, args.rounds)) if name == "ours"
                 else ctx.Process(target=_gloo, args=(r, port, q, args.mb, args.rounds)) for r in range(2)]  # fmt: skip
        for pr in procs:
            pr.start()
        for pr in procs:
            pr.join()
        rows = [q.get() for _ in range(2)]
        results.append({"transport": name, "round_trip_us": round(sum(r[2] for r in rows) / 2, 1),
                        "exchange_MBps_per_direction": round(sum(r[3] for r in rows) / 2, 1)})  # fmt: skip
    for r in results:
        print(f"{r['transport']:>5}: {r['round_trip_us']:8.1f} us per round trip, {r['exchange_MBps_per_direction']:8.1f} MB/s per direction")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
