"""``smt breach report|assess|notify|status``: the breach commands.

    smt breach report --aware-at ISO --regime R [--regime R2] [--affected N] [--records N]
                      [--regions R ...] [--subject S ...] [--high-risk] [--encrypted]
                      [--nature TEXT] [--contact TEXT] [--category C ...] [--measure M ...]
    smt breach assess ID --likelihood 1-4 --severity 1-4 [--high-risk] [--encrypted]
                      [--risk-removed] [--disproportionate-effort] [--unlawful-purpose]
    smt breach notify ID [--output URL] [--authority-locale L] [--late-reasons TEXT]
    smt breach status ID [--locale L]

``--json``: the last stdout line is one JSON object, e.g. for report
``{"id", "status", "deadlines": [{"regime", "obligation", "due_at", ...}], ...}`` (``due_at``
in the authority's zone, ISO 8601 with offset; obligation ``authority`` for the supervisory
authority, ``subjects`` for data subjects).  Without it, a translated summary (``--locale``).
Exit status 0 on success, 1 on a refused operation (stderr says what to do).  ``flows/cli.py``
calls :func:`register`; ``python -m flows.cli_breach`` runs these commands alone.  These
commands call the same functions as the ``breach-notification`` flow, without Prefect.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from compliance import breach_service
from compliance.breach_notices import CATEGORIES, MEASURES, cli_summary
from compliance.db import open_store
from compliance.settings import ComplianceSettings
from mpc.errors import SmtError

Handler = Callable[[argparse.Namespace], dict[str, Any]]


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give an offset, e.g. 2026-10-23T10:00:00+02:00")
    return value


def _leaf(
    sub: argparse._SubParsersAction, name: str, helptext: str, handler: Handler
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=helptext, description=helptext)
    p.add_argument("--json", action="store_true", help="last stdout line: one JSON object")
    p.add_argument("--locale", default="en", help="language of the summary (without --json)")
    p.set_defaults(func=lambda args: _run(args, handler))
    return p


def _risk_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--high-risk",
        action="store_true",
        default=None,
        help="high risk to subjects (GDPR Art. 34; PDPA significant harm)",
    )
    p.add_argument(
        "--encrypted",
        action="store_true",
        default=None,
        help="the data was encrypted and the key not compromised",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``breach`` with ``report``, ``assess``, ``notify`` and ``status`` to ``smt``."""
    breach = subparsers.add_parser("breach", help="personal-data breaches and their deadlines")
    sub = breach.add_subparsers(dest="breach_command", required=True)
    p = _leaf(sub, "report", "register an incident and compute its deadlines", _report)
    p.add_argument("--aware-at", type=_aware, required=True, help="ISO time with offset")
    p.add_argument(
        "--regime",
        action="append",
        default=[],
        help="gdpr, pdpa, california (ccpa), appi, lgpd; repeatable",
    )
    p.add_argument("--affected", type=int, help="approximate number of subjects")
    p.add_argument("--records", type=int, default=0, help="approximate number of records")
    p.add_argument("--regions", nargs="*", default=[], help="americas, europe, apac")
    p.add_argument("--subject", action="append", default=[], help="affected subject id")
    p.add_argument("--nature", default="Personal data breach under investigation")
    p.add_argument("--contact", default="the data protection officer")
    p.add_argument("--category", action="append", default=[], choices=sorted(CATEGORIES))
    p.add_argument("--measure", action="append", default=[], choices=sorted(MEASURES))
    p.add_argument("--occurred-at", type=_aware)
    _risk_flags(p)
    p = _leaf(sub, "assess", "record the risk assessment and recompute deadlines", _assess)
    p.add_argument("id")
    p.add_argument("--likelihood", type=int, required=True, help="1 (negligible) to 4")
    p.add_argument("--severity", type=int, required=True, help="1 (negligible) to 4")
    _risk_flags(p)
    for flag in ("--risk-removed", "--disproportionate-effort", "--unlawful-purpose"):
        p.add_argument(flag, action="store_true", default=None)
    p = _leaf(sub, "notify", "write the authority notification and subject notices", _notify)
    p.add_argument("id")
    p.add_argument("--output", help="notice store URL (default SMT_BREACH_NOTICE_URL)")
    p.add_argument("--authority-locale", help="default SMT_BREACH_AUTHORITY_LOCALE")
    p.add_argument("--late-reasons", help="required once an authority deadline has passed")
    p = _leaf(sub, "status", "an incident, its deadlines and notices", _status)
    p.add_argument("id")


def _store() -> Any:
    return open_store(ComplianceSettings().database_url)


def _actor() -> str:
    return ComplianceSettings().actor


def _report(a: argparse.Namespace) -> dict[str, Any]:
    return breach_service.report(
        _store(),
        actor=_actor(),
        aware_at=a.aware_at,
        nature=a.nature,
        contact=a.contact,
        regimes=a.regime,
        subject_ids=a.subject,
        affected=a.affected,
        records=a.records,
        regions=a.regions,
        categories=a.category,
        measures=a.measure,
        occurred_at=a.occurred_at,
        high_risk=a.high_risk,
        encrypted=bool(a.encrypted),
    )


def _assess(a: argparse.Namespace) -> dict[str, Any]:
    return breach_service.assess(
        _store(),
        a.id,
        actor=_actor(),
        likelihood=a.likelihood,
        severity=a.severity,
        high_risk=a.high_risk,
        encrypted=a.encrypted,
        risk_removed=a.risk_removed,
        disproportionate_effort=a.disproportionate_effort,
        unlawful_purpose=a.unlawful_purpose,
    )


def _notify(a: argparse.Namespace) -> dict[str, Any]:
    settings = breach_service.BreachSettings()
    return breach_service.notify(
        _store(),
        a.id,
        output_url=a.output or settings.breach_notice_url,
        actor=_actor(),
        authority_locale=a.authority_locale or settings.breach_authority_locale,
        late_reasons=a.late_reasons,
    )


def _status(a: argparse.Namespace) -> dict[str, Any]:
    return breach_service.status(_store(), a.id)


def _summary(out: dict[str, Any], locale: str) -> str:
    if "deadlines" not in out:
        return "\n".join(f"{k}: {v}" for k, v in out.items())
    open_ = [d for d in out["deadlines"] if d["state"] == "open"]
    dues = sorted(datetime.fromisoformat(d["due_at"]) for d in open_ if d["due_at"])
    return cli_summary(
        reference=out["id"],
        open_deadlines=len(open_),
        next_due=dues[0] if dues else None,
        locale=locale,
    )


def _run(args: argparse.Namespace, handler: Handler) -> int:
    try:
        out, code = handler(args), 0
    except (SmtError, ValueError) as err:
        print(f"smt: error: {err}", file=sys.stderr)
        out, code = {"error": str(err)}, 1
    if args.json:
        print(json.dumps(out, default=str, ensure_ascii=False))
    elif code == 0:
        print(_summary(out, args.locale))
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="smt", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
