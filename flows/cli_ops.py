"""``smt up`` / ``smt down``: the local operations stack (see ``flows/ops_stack.py``).

    smt up [--state-dir .smt/ops] [--port 4200] [--metrics-port 9464] [--database-url URL]
    smt down [--state-dir .smt/ops]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_STATE = Path(".smt/ops")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("up", help="start Prefect server, pools, deployments, workers, "
                                         "metrics endpoint (loopback)")
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE,
                   help="pids, logs, Prefect home, metrics textfiles (default .smt/ops)")
    p.add_argument("--port", type=int, default=4200, help="Prefect server port (0: any free)")
    p.add_argument("--metrics-port", type=int, default=9464, help="0: any free port")
    p.add_argument("--database-url", help="PostgreSQL URL for the Prefect server "
                                          "(postgresql+asyncpg://...); default SQLite")
    p.add_argument("--no-schedules", action="store_true",
                   help="deploy with every schedule paused (tests, demos)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per start step")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_up)
    p = subparsers.add_parser("down", help="stop exactly what `smt up` started")
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_down)


def _up(args: argparse.Namespace) -> int:
    from flows.ops_stack import up

    stack = up(args.state_dir, port=args.port, metrics_port=args.metrics_port,
               database_url=args.database_url, schedules=not args.no_schedules,
               timeout=args.timeout)
    summary = {"ui": stack.ui_url, "api": stack.api_url, "metrics": stack.metrics_url,
               "state": str(stack.file),
               "processes": {p.name: p.pid for p in stack.processes}}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"Prefect UI: {stack.ui_url}")
        print(f"metrics:    {stack.metrics_url}")
        print(f"use it:     export PREFECT_API_URL={stack.api_url}")
        for name, pid in summary["processes"].items():
            print(f"  {name:<16} pid {pid}")
        print(f"stop with:  smt down --state-dir {args.state_dir}")
    return 0


def _down(args: argparse.Namespace) -> int:
    from flows.ops_stack import down

    result = down(args.state_dir)
    if args.json:
        print(json.dumps(result))
    elif not result:
        print(f"nothing recorded in {args.state_dir}; nothing stopped")
    else:
        for name, outcome in result.items():
            print(f"  {name:<16} {outcome}")
    return 0
