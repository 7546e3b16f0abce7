"""``smt infer``: run the secure-inference flow on a batch.

Exit status: 0 when the run completed (quarantined or excluded records included), 2 when the
input as a whole is unusable or an option is invalid, 1 on any other failure.  With ``--json``
the last line of stdout is one JSON object (see :data:`JSON_KEYS`).

Runs against ``PREFECT_API_URL`` when it is set, else with an ephemeral local Prefect server.
``flows/cli.py`` calls :func:`register`; ``python -m flows.cli_infer`` runs it alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

JSON_KEYS = ("run_id", "status", "records_in", "records_ok", "records_quarantined",
             "records_excluded", "results", "quarantine", "manifest", "rounds", "bytes",
             "seconds")
EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "infer", help="run a batch through the secure engine (Prefect flow)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="batch: CSV, JSON Lines or Parquet; "
                                                       "local path or s3:// URL")
    parser.add_argument("--output", required=True, help="output folder (local or s3://); the "
                                                        "run writes <output>/<run_id>/")
    parser.add_argument("--model", default="minilm",
                        help="'minilm' (default) or a Hugging Face save_pretrained folder")
    parser.add_argument("--region", choices=("americas", "europe", "apac"),
                        help="process only records resident in this region")
    parser.add_argument("--shard-size", type=int, default=32, help="records per MPC session")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per text")
    parser.add_argument("--parties", type=int, choices=(2, 3), default=2)
    parser.add_argument("--run-id", help="resume this run (default: a new id)")
    parser.add_argument("--consent-policy", choices=("default", "strict"),
                        help="default: SMT_CONSENT_POLICY or 'default'")
    parser.add_argument("--dask-address", help="existing Dask scheduler (default: local cluster)")
    parser.add_argument("--dask-workers", type=int, help="workers of the local Dask cluster")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate, gate and plan shards without MPC")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON object on the last stdout line")


def _fail(args: argparse.Namespace, code: int, message: str, run_id: str | None) -> int:
    print(f"smt infer: error: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps({"run_id": run_id, "status": "unusable" if code == 2 else "failed",
                          "error": message}))
    return code


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from pydantic import ValidationError

    from flows.secure_inference import InferenceParams, dask_runner, secure_inference
    from mpc.errors import ConfigurationError, InputError, SmtError
    from tasks.batch import check_run_id, new_run_id
    from tasks.settings import InferenceSettings

    run_id = args.run_id or new_run_id()
    try:
        check_run_id(run_id)
        params = InferenceParams(
            input_url=args.input, output_url=args.output, model=args.model, region=args.region,
            shard_size=args.shard_size, max_length=args.max_length, parties=args.parties,
            run_id=run_id, consent_policy=args.consent_policy, dry_run=args.dry_run)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        return _fail(args, EXIT_UNUSABLE, f"invalid option(s): {problems}", run_id)
    except ConfigurationError as err:
        return _fail(args, EXIT_UNUSABLE, str(err), run_id)

    settings = InferenceSettings()
    flow_obj = secure_inference.with_options(flow_run_name=f"infer-{run_id}")
    address = args.dask_address or settings.dask_address
    if address or args.dask_workers:
        flow_obj = flow_obj.with_options(
            task_runner=dask_runner(address, args.dask_workers or settings.dask_workers))
    if not args.json:
        print(f"run {run_id}: {args.input} -> {args.output}", file=sys.stderr)
    try:
        summary = flow_obj(params=params)
    except InputError as err:  # BatchUnusable and engine input errors: the input as a whole
        return _fail(args, EXIT_UNUSABLE, str(err), run_id)
    except SmtError as err:
        return _fail(args, EXIT_FAILED, str(err), run_id)
    except Exception as err:  # noqa: BLE001 - reported, exit 1
        logging.getLogger(__name__).debug("flow failed", exc_info=True)
        return _fail(args, EXIT_FAILED, f"{type(err).__name__}: {err}", run_id)

    if args.json:
        print(json.dumps({k: summary.get(k) for k in JSON_KEYS}))
    else:
        print(f"run {summary['run_id']} {summary['status']}: {summary['records_in']} records in, "
              f"{summary['records_ok']} ok, {summary['records_quarantined']} quarantined, "
              f"{summary['records_excluded']} excluded")
        print(f"results:    {summary['results']}")
        print(f"quarantine: {summary['quarantine']}")
        print(f"manifest:   {summary['manifest']}")
        print(f"MPC cost:   {summary['rounds']} rounds, {summary['bytes'] / 1e6:.1f} MB sent, "
              f"{summary['seconds']:.1f} s in sessions")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smt")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
