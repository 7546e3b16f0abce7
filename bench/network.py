"""BERT-base seconds per sequence under SHAFT's network settings, parties in network namespaces.

Every party (data owner, model owner, dealer) runs in its own network namespace, joined to a
bridge by a veth pair; each veth end is rate-limited with ``tc tbf`` (both directions):

    LAN: 1 GB/s (8 Gbit/s), 0.5 ms RTT        WAN: 400 MB/s (3.2 Gbit/s), 4 ms RTT

This kernel has no ``netem``, so latency cannot be added in the kernel: we add it on top of the
measured run as rounds x RTT (every round -- an exchange between the computing parties or with
the online dealer -- is charged one full RTT, which overstates a one-way message) and say so
in the record.  Needs root (ip netns, tc).

    python bench/network.py --setting lan --setting wan [--model bert-base --seq-len 128]

Writes bench/results/network-<model>-T<seq>-B<batch>.json/.md.  SHAFT (NDSS 2025) reports
28.6 s (LAN) and 66.5 s (WAN) per BERT-base sequence.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SETTINGS = {"lan": {"rate": "8gbit", "rtt_ms": 0.5}, "wan": {"rate": "3200mbit", "rtt_ms": 4.0}}
SHAFT = {"lan": 28.6, "wan": 66.5}
ROLES = ["data-owner", "model-owner", "dealer"]
BRIDGE = "smtbr0"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


def _tc(*args: str) -> None:
    subprocess.run(["tc", *args], check=True)


@contextlib.contextmanager
def namespaces(rate: str) -> Iterator[dict]:
    """One namespace per role on a shared bridge, every link shaped to ``rate``."""
    if shutil.which("ip") is None or shutil.which("tc") is None:
        raise SystemExit("needs iproute2 (ip, tc) and root")
    names = [f"smt-{i}" for i in range(len(ROLES))]
    try:
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("link", "set", BRIDGE, "up")
        for i, ns in enumerate(names):
            _ip("netns", "add", ns)
            _ip("link", "add", f"smtv{i}", "type", "veth", "peer", "name", "smtnet", "netns", ns)
            _ip("link", "set", f"smtv{i}", "master", BRIDGE)
            _ip("link", "set", f"smtv{i}", "up")
            _ip("-n", ns, "addr", "add", f"10.77.0.{i + 1}/24", "dev", "smtnet")
            _ip("-n", ns, "link", "set", "smtnet", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            # shape both directions of the party's link: its egress and the bridge's egress to it
            _tc("qdisc", "add", "dev", f"smtv{i}", "root", "tbf", "rate", rate, "burst", "4mb", "latency", "100ms")
            subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "smtnet", "root", "tbf",
                            "rate", rate, "burst", "4mb", "latency", "100ms"], check=True)  # fmt: skip
        yield {
            "prefix_by_role": {role: ["ip", "netns", "exec", ns] for role, ns in zip(ROLES, names, strict=True)},
            "rendezvous_host": "10.77.0.1",  # each other party listens on its own 10.77.0.x (its route there)
        }
    finally:
        for ns in names:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", BRIDGE], check=False, capture_output=True)


def measure_throughput(opts: dict) -> float:
    """MB/s from the data owner's namespace to the model owner's (a 200 MB TCP transfer)."""
    server = ("import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
              "s.bind(('10.77.0.2',5999));s.listen(1);c,_=s.accept();n=0\n"
              "while True:\n b=c.recv(1<<20)\n if not b: break\n n+=len(b)\nprint(n)")  # fmt: skip
    client = ("import socket,time;c=socket.create_connection(('10.77.0.2',5999));b=b'x'*(1<<20);t=time.perf_counter()\n"
              "for _ in range(200): c.sendall(b)\nc.close();print(time.perf_counter()-t)")  # fmt: skip
    srv = subprocess.Popen([*opts["prefix_by_role"]["model-owner"], sys.executable, "-c", server], stdout=subprocess.PIPE)
    import time

    time.sleep(0.5)
    out = subprocess.run([*opts["prefix_by_role"]["data-owner"], sys.executable, "-c", client],
                         capture_output=True, text=True, check=True)  # fmt: skip
    srv.wait(timeout=30)
    return 200 * (1 << 20) / 1e6 / float(out.stdout.strip())


def main() -> int:
    from mpc import bench

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setting", action="append", choices=sorted(SETTINGS))
    p.add_argument("--model", default="bert-base")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--before", action="store_true", help="also the previous engine (CrypTen comparison)")
    p.add_argument("--vanilla", action="store_true", help="also stock CrypTen")
    p.add_argument("--record", type=Path, default=Path("bench/results"))
    args = p.parse_args()
    record: dict = {"model": args.model, "seq_len": args.seq_len, "batch": args.batch, "settings": {},
                    "latency": "added as rounds x RTT on top of the measured run (no netem in this kernel)"}  # fmt: skip
    for setting in args.setting or ["lan", "wan"]:
        spec = SETTINGS[setting]
        with namespaces(spec["rate"]) as opts:
            mbps = measure_throughput(opts)
            r = bench.run(args.model, args.seq_len, args.batch, skip_vanilla=not args.vanilla, before=args.before,
                          launch_options=opts)  # fmt: skip
        rows = {}
        for engine in ("secure", "before", "vanilla"):
            if engine in r:
                s = r[engine]
                total = s["seconds"] + s["rounds"] * spec["rtt_ms"] / 1000
                rows[engine] = {"measured_seconds": s["seconds"], "rounds": s["rounds"], "bytes": s["bytes"],
                                "dealer_bytes": s["dealer_bytes"], "latency_seconds": s["rounds"] * spec["rtt_ms"] / 1000,
                                "seconds": total, "seconds_per_sequence": total / args.batch,
                                "max_abs_error": s["max_abs_error"]}  # fmt: skip
        record["settings"][setting] = {**spec, "measured_MBps": round(mbps, 1), "shaft_seconds": SHAFT[setting],
                                       "engines": rows, "machine": r["machine"]}  # fmt: skip
        print(setting, json.dumps(record["settings"][setting], indent=1))
    stem = f"network-{args.model}-T{args.seq_len}-B{args.batch}"
    args.record.mkdir(parents=True, exist_ok=True)
    (args.record / f"{stem}.json").write_text(json.dumps(record, indent=1))
    lines = [f"{args.model} T={args.seq_len} B={args.batch}; latency added as rounds x RTT (no netem here)", "",
             "| setting | link (measured MB/s) | engine | rounds | MB/party | measured s | + rounds x RTT | s/sequence | SHAFT s |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for setting, v in record["settings"].items():
        for engine, e in v["engines"].items():
            lines.append(f"| {setting} | {v['rate']} ({v['measured_MBps']}) | {engine} | {e['rounds']} | {e['bytes'] / 1e6:.0f} | "
                         f"{e['measured_seconds']:.1f} | {e['latency_seconds']:.2f} | {e['seconds_per_sequence']:.1f} | {v['shaft_seconds']} |")  # fmt: skip
    (args.record / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
