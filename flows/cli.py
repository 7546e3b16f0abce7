"""The ``smt`` command line.

Subcommands live next to what they drive: ``party`` (mpc.party), ``embed`` and ``bench`` here,
``infer`` (flows/cli_infer.py), compliance commands (flows/cli_compliance.py), breach commands
(flows/cli_breach.py).  With ``--json`` the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from mpc.errors import SmtError

# With no PREFECT_API_URL every flow run starts a temporary Prefect server; Prefect gives it 20 s,
# and the first start on a fresh machine (creating its SQLite database) took longer than that on
# this 2-core VM: `make run` failed with "Timed out while attempting to connect to ephemeral
# Prefect API server".  A user's own setting wins.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

# Subcommand modules with a ``register(subparsers)`` function, in help order.
SUBCOMMAND_MODULES = ("flows.cli_infer", "flows.cli_compliance", "flows.cli_breach", "flows.cli_ops")

DEMO_TEXTS = [
    "The patient reported mild chest pain after exercise.",
    "Quarterly revenue grew 12% while operating costs fell.",
    "El empleado solicitó una baja por maternidad de 16 semanas.",
    "Le client conteste une transaction de 1 250,00 EUR.",
    "Der Vertrag endet am 31. Dezember 2026.",
    "患者は薬の副作用を訴えた。",
]


def _cmd_party(args: argparse.Namespace) -> int:
    from mpc import party

    return party.run(args)


def _cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from mpc import service

    logging.basicConfig(level=logging.INFO, format="%(asctime)s service %(levelname)s %(message)s")
    return service.run(service.config_from_args(args))


def _cmd_embed(args: argparse.Namespace) -> int:
    from mpc import run_inference

    texts: list[str] = []
    if args.input:  # never texts on the command line: other local users can read it (ps, /proc)
        raw = sys.stdin.read() if str(args.input) == "-" else Path(args.input).read_text(encoding="utf-8")
        texts = [line for line in raw.splitlines() if line.strip()]
    demo = not texts
    texts = texts or DEMO_TEXTS
    result = run_inference(texts, model=args.model, parties=args.parties, max_length=args.max_length,
                           on_overlong=args.on_overlong, timeout=args.timeout, device=args.device)  # fmt: skip
    summary = {
        "model": result.model_name,
        "kind": result.kind,
        "records": len(texts),
        "dimensions": int(result.outputs.shape[1]),
        "parties": args.parties,
        "rounds": result.cost["rounds"],
        "bytes_per_party": result.cost["bytes"],
        "dealer_bytes": result.cost["dealer_bytes"],
        "seconds": result.cost["seconds"],
    }
    if args.output:
        import numpy as np

        np.save(args.output, result.outputs)
        summary["output"] = str(args.output)
    if demo and result.kind == "embedding":
        # the embedded defaults: also check the secure result against plaintext Hugging Face
        from mpc.session import plaintext_forward

        ref = plaintext_forward(args.model, texts).numpy()
        cos = (result.outputs * ref).sum(1) / (
            (result.outputs**2).sum(1) ** 0.5 * (ref**2).sum(1) ** 0.5
        )
        summary["min_cosine_vs_plaintext"] = round(float(cos.min()), 7)
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k:>26}: {v}")
    return 0


def _cmd_identity(args: argparse.Namespace) -> int:
    from mpc import identity

    if args.action == "create":
        import re

        if not args.role or not re.fullmatch(r"data-owner|model-owner|dealer|helper-[2-9]", args.role):
            from mpc.errors import InputError

            raise InputError("--role must be data-owner, model-owner, dealer or helper-K (K = 2..9)")
        fp = identity.create(args.role, args.dir, days=args.days)
        print(f"{args.role}: {fp}\n  key  {args.dir / (args.role + '.key')} (0600: keep it; never send it)\n"
              f"  cert {args.dir / (args.role + '.crt')} (public: give it to the other parties)")  # fmt: skip
        return 0
    for cert in sorted(Path(args.dir).glob("*.crt")):
        print(f"{cert.stem:>14}: {identity.fingerprint(cert.read_bytes())}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smt", description="Secure MPC Transformer")
    sub = parser.add_subparsers(dest="command", required=True)

    from mpc.party import build_parser as party_parser

    p = sub.add_parser("party", help="run one MPC party (any host)")
    party_parser(p)
    p.set_defaults(func=_cmd_party)

    from mpc.service import build_parser as serve_parser

    p = sub.add_parser("serve", help="run the model-owner or dealer party service (mpc/service.py)")
    serve_parser(p)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("identity", help="a role's key pair and certificate for the TLS links (mpc/identity.py)")
    p.add_argument("action", choices=["create", "show"], help="create ROLE's key in DIR, or show the fingerprints in DIR")
    p.add_argument("--role", help="data-owner, model-owner, helper-K or dealer (create)")
    p.add_argument("--dir", type=Path, required=True, help="identity directory (own key + every role's .crt)")
    p.add_argument("--days", type=int, default=365, help="certificate lifetime (create)")
    p.set_defaults(func=_cmd_identity)

    p = sub.add_parser("embed", help="embed texts under MPC (embedded defaults: demo texts, MiniLM)")
    p.add_argument("--input", type=Path, help="a UTF-8 file, one text per line, or - for standard input "
                   "(texts are never taken from the command line, where other local users can read them)")
    p.add_argument("--output", type=Path, help="write the outputs as .npy")
    _session_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_embed)

    from mpc.bench import add_arguments as bench_arguments
    from mpc.bench import command as bench_command

    p = sub.add_parser("bench", help="secure vs vanilla CrypTen vs plaintext, side by side")
    bench_arguments(p)
    p.set_defaults(func=bench_command)

    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        module.register(sub)
    return parser


def _session_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="minilm", help="'minilm', 'bert-base' or a save_pretrained directory")
    p.add_argument("--parties", type=int, default=2, choices=[2, 3])
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--on-overlong", choices=["truncate", "reject"], default="truncate")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--device", default="cpu")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SmtError as err:
        print(f"smt: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
