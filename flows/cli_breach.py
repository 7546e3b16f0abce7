"""``smt breach report|update|assess|notify|close|status|list``: the breach commands.

    smt breach report --aware-at ISO --regime R [--regime R2] [--affected N] [--records N]
                      [--regions R ...] [--subject S ...] [--high-risk] [--encrypted]
                      [--nature TEXT] [--contact TEXT] [--category C ...] [--measure M ...]
                      [--cause TEXT] [--prevention TEXT] [--small-agent] [--assessed-at ISO]
                      [--occurred-at ISO [--occurred-until ISO] [--occurred-estimated]]
                      [--law-enforcement-delay | --no-law-enforcement-delay]
                      [--identity-services TEXT] [--third-party-source]
    smt breach update ID [--nature ...] [--contact ...] [--category C ...] [--measure M ...]
                      [--affected N] [--records N] [--cause ...] [--prevention ...]
                      [--small-agent | --no-small-agent] [--occurred-at ISO] ... (as report)
                      [--subject S ...] [--secondary-damage TEXT]
    smt breach assess ID --likelihood 1-4 --severity 1-4 [--assessed-at ISO] [--high-risk]
                      [--encrypted] [--risk-removed] [--disproportionate-effort]
                      [--unlawful-purpose]
    smt breach notify ID [--output URL] [--authority-locale L] [--late-reasons TEXT] [--final]
                      [--complement TEXT] [--notified-otherwise N --channel TEXT [--regime R]]
    smt breach close ID --reason TEXT [--unmet-ok]
    smt breach status ID
    smt breach list [--status reported|assessed|notified|closed]

Every option is checked before anything is stored: a bad value (unknown locale, region,
status or code; a count beyond 2^31-1; a time in the future or more than 20 years back; a
blank or multi-line id; free text over 4,000 characters or with control characters other
than line breaks) gives one line on stderr, exit status 2 (a bad option) or 1 (a refused operation), and
stores nothing.  ``--contact`` defaults to ``SMT_BREACH_CONTACT``; notices are refused until
nature, categories, approximate numbers, measures and a real contact point are known.

``--json``: the last stdout line is one JSON object, e.g. for report
``{"id", "status", "deadlines": [{"regime", "obligation", "due_at", "state", ...}], ...}``
(``due_at`` in the authority's zone, ISO 8601 with offset; ``state`` open, met, late or
missed), or ``{"error": "..."}`` on failure.  Without it, a translated summary (``--locale``).
``--assessed-at`` on report dates the risk given with it (``--high-risk``) and is refused
without one.  ``notify`` needs ``SMT_BREACH_BUSINESS_NAME`` for California notices (1798.82
(d)(2)(A)).  ``flows/cli.py`` calls :func:`register`; ``python -m flows.cli_breach`` runs these commands
alone.  These commands call the same functions as the ``breach-notification`` flow.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

from compliance import breach_checks as checks
from compliance import breach_service
from compliance.breach_deadlines import parse_regime
from compliance.breach_notices import CATEGORIES, MEASURES, cli_summary
from compliance.breach_store import BreachStatus
from compliance.db import open_store
from compliance.i18n import normalize_locale
from compliance.settings import ComplianceSettings
from mpc.errors import SmtError

Handler = Callable[[argparse.Namespace], dict[str, Any]]


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


class _Parser(argparse.ArgumentParser):
    """Refuses a bad option with one line on stderr (and ``{"error": ...}`` on stdout with
    ``--json``), exit status 2, before any handler runs."""

    def error(self, message: str) -> NoReturn:
        text = _one_line(f"{self.prog}: {message}")
        print(f"smt: error: {text}", file=sys.stderr)
        if "--json" in sys.argv[1:]:
            print(json.dumps({"error": text}, ensure_ascii=False))
        self.exit(2)


def _checked(fn: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a check raising ``InputError``: its message becomes the error."""

    def convert(text: str) -> Any:
        try:
            return fn(text)
        except (SmtError, ValueError, OverflowError) as err:
            raise argparse.ArgumentTypeError(_one_line(str(err))) from None

    convert.__name__ = getattr(fn, "__name__", "value")
    return convert


def _aware_value(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("give an offset, e.g. 2026-10-23T10:00:00+02:00")
    checks.moment(value, "the time", now=datetime.now(UTC))  # not future, not years back
    return value


def _count_value(text: str) -> int:
    value = int(text)
    checks.count(value, "a count")
    return value


_aware = _checked(_aware_value)
_count = _checked(_count_value)
_locale = _checked(normalize_locale)
_id = _checked(lambda text: checks.identifier(text, "id"))
_text = _checked(lambda text: checks.one_line(text, "value"))
_block = _checked(lambda text: checks.text_block(text, "the text"))
_region = _checked(lambda text: checks.regions([text])[0])
_regime = _checked(lambda text: parse_regime(text).value)
def _status_value(text: str) -> str:
    names = [s.value for s in BreachStatus]
    if text.strip().lower() not in names:
        raise ValueError(f"unknown status {text!r}; use one of {', '.join(names)}")
    return text.strip().lower()


_status_filter = _checked(_status_value)


def _leaf(
    sub: argparse._SubParsersAction, name: str, helptext: str, handler: Handler
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=helptext, description=helptext)
    p.add_argument("--json", action="store_true", help="last stdout line: one JSON object")
    p.add_argument(
        "--locale", type=_locale, default="en", help="language of the summary (without --json)"
    )
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


def _fact_options(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    """Options shared by report and update (update: ``None`` means "leave as it is")."""
    empty: Any = [] if defaults else None
    p.add_argument("--affected", type=_count, help="approximate number of subjects")
    p.add_argument(
        "--records", type=_count, default=0 if defaults else None, help="approximate records"
    )
    p.add_argument(
        "--nature", type=_block, help="what happened (in every notice; up to 4,000 characters)"
    )
    p.add_argument("--contact", help="contact point with real details (default SMT_BREACH_CONTACT)")
    p.add_argument("--category", action="append", default=empty, choices=sorted(CATEGORIES))
    p.add_argument("--measure", action="append", default=empty, choices=sorted(MEASURES))
    p.add_argument("--cause", type=_block, help="cause of the breach (APPI Rules Art. 8)")
    p.add_argument(
        "--prevention", type=_block, help="measures to prevent recurrence (APPI Rules Art. 8)"
    )
    p.add_argument("--occurred-at", type=_aware, help="when the breach occurred (ISO, offset)")
    p.add_argument(
        "--occurred-until", type=_aware, help="end of the date range it occurred in (1798.82)"
    )
    p.add_argument(
        "--occurred-estimated",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--occurred-at is an estimated date (Cal. Civ. Code 1798.82(d)(2)(C))",
    )
    p.add_argument(
        "--law-enforcement-delay",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="notification was (or was not) delayed by a law enforcement investigation;"
        " required for California notices once police were informed (1798.82(d)(2)(D))",
    )
    p.add_argument(
        "--third-party-source",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the breach happened at a third party, not at us (1798.82(d)(2)(G))",
    )
    p.add_argument(
        "--identity-services",
        type=_block,
        help="the offer of identity theft prevention and mitigation services (12 months, no"
        " cost) and how to take it up; California, identity data exposed (1798.82(d)(2)(G))",
    )
    p.add_argument(
        "--secondary-damage",
        type=_block,
        help="secondary damage or its risk (APPI Rules Art. 8(1)(v); in APPI subject notices)",
    )
    p.add_argument(
        "--small-agent",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="LGPD small processing agent: doubled deadlines (default SMT_BREACH_SMALL_AGENT)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``breach`` and its commands to ``smt``."""
    breach = subparsers.add_parser("breach", help="personal-data breaches and their deadlines")
    sub = breach.add_subparsers(dest="breach_command", required=True, parser_class=_Parser)
    p = _leaf(sub, "report", "register an incident and compute its deadlines", _report)
    p.add_argument("--aware-at", type=_aware, required=True, help="ISO time with offset")
    p.add_argument(
        "--regime",
        action="append",
        default=[],
        type=_regime,
        help="gdpr, pdpa, california (ccpa), appi, lgpd; repeatable",
    )
    p.add_argument("--regions", nargs="*", type=_region, default=[], help="americas europe apac")
    p.add_argument("--subject", action="append", type=_id, default=[], help="affected subject id")
    p.add_argument("--assessed-at", type=_aware, help="when the risk given here was assessed")
    _fact_options(p, defaults=True)
    _risk_flags(p)
    p = _leaf(sub, "update", "add or correct the facts of an incident", _update)
    p.add_argument("id", type=_id)
    p.add_argument(
        "--subject",
        action="append",
        type=_id,
        default=[],
        help="link another affected subject (repeatable); notified on the next notify",
    )
    _fact_options(p, defaults=False)
    p = _leaf(sub, "assess", "record the risk assessment and recompute deadlines", _assess)
    p.add_argument("id", type=_id)
    p.add_argument("--likelihood", type=int, required=True, choices=range(1, 5), help="1 to 4")
    p.add_argument("--severity", type=int, required=True, choices=range(1, 5), help="1 to 4")
    p.add_argument("--assessed-at", type=_aware, help="when the assessment was made (default now)")
    _risk_flags(p)
    for flag in ("--risk-removed", "--disproportionate-effort", "--unlawful-purpose"):
        p.add_argument(flag, action="store_true", default=None)
    p = _leaf(sub, "notify", "write the authority notification and subject notices", _notify)
    p.add_argument("id", type=_id)
    p.add_argument("--output", help="notice store URL (default SMT_BREACH_NOTICE_URL)")
    p.add_argument("--authority-locale", type=_locale, help="GDPR authority's language")
    p.add_argument("--late-reasons", type=_text, help="required once an authority deadline passed")
    p.add_argument("--final", action="store_true", help="the APPI final report (Rules Art. 8(2))")
    p.add_argument(
        "--complement",
        type=_block,
        help="complementary information for an update (LGPD complement, GDPR Art. 33(4))",
    )
    p.add_argument(
        "--notified-otherwise",
        type=_count,
        metavar="N",
        help="N more affected subjects were notified by other means (with --channel); counted"
        " toward the subjects deadlines",
    )
    p.add_argument("--channel", type=_text, help="how they were notified (e.g. postal letter)")
    p.add_argument(
        "--regime",
        action="append",
        type=_regime,
        help="regime(s) the --notified-otherwise record counts for (default: every open one)",
    )
    p = _leaf(sub, "close", "close an incident (audited, with a reason)", _close)
    p.add_argument("id", type=_id)
    p.add_argument("--reason", type=_text, required=True)
    p.add_argument("--unmet-ok", action="store_true", help="close although deadlines are unmet")
    p = _leaf(sub, "status", "an incident, its deadlines and notices", _status)
    p.add_argument("id", type=_id)
    p = _leaf(sub, "list", "incidents, optionally of one status", _list)
    p.add_argument("--status", type=_status_filter, help="reported, assessed, notified or closed")


def _store() -> Any:
    return open_store(ComplianceSettings().database_url)


def _actor() -> str:
    return ComplianceSettings().actor


def _facts(a: argparse.Namespace) -> dict[str, Any]:
    return {
        "nature": a.nature,
        "contact": a.contact,
        "categories": a.category,
        "measures": a.measure,
        "affected": a.affected,
        "records": a.records,
        "cause": a.cause,
        "prevention": a.prevention,
        "small_agent": a.small_agent,
        "occurred_at": a.occurred_at,
        "occurred_until": a.occurred_until,
        "occurred_estimated": a.occurred_estimated,
        "law_enforcement_delay": a.law_enforcement_delay,
        "third_party_source": a.third_party_source,
        "identity_services": a.identity_services,
        "secondary_damage": a.secondary_damage,
    }


def _report(a: argparse.Namespace) -> dict[str, Any]:
    settings = breach_service.BreachSettings()
    facts = _facts(a)
    facts["nature"] = a.nature or ""
    facts["contact"] = a.contact if a.contact is not None else settings.breach_contact
    if a.small_agent is None:
        facts["small_agent"] = settings.breach_small_agent
    facts["occurred_estimated"] = bool(a.occurred_estimated)
    facts["third_party_source"] = bool(a.third_party_source)
    return breach_service.report(
        _store(),
        actor=_actor(),
        aware_at=a.aware_at,
        regimes=a.regime,
        subject_ids=a.subject,
        regions=a.regions,
        high_risk=a.high_risk,
        encrypted=bool(a.encrypted),
        assessed_at=a.assessed_at,
        **facts,
    )


def _update(a: argparse.Namespace) -> dict[str, Any]:
    facts = {k: v for k, v in _facts(a).items() if v is not None}
    return breach_service.update(
        _store(), a.id, actor=_actor(), subject_ids=a.subject, **facts
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
        assessed_at=a.assessed_at,
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
        final=a.final,
        complement=a.complement,
        business=settings.breach_business_name,
        notified_otherwise=a.notified_otherwise,
        channel=a.channel,
        otherwise_regimes=a.regime,
    )


def _close(a: argparse.Namespace) -> dict[str, Any]:
    return breach_service.close(
        _store(), a.id, reason=a.reason, unmet_ok=a.unmet_ok, actor=_actor()
    )


def _status(a: argparse.Namespace) -> dict[str, Any]:
    return breach_service.status(_store(), a.id)


def _list(a: argparse.Namespace) -> dict[str, Any]:
    return breach_service.list_incidents(_store(), status=a.status)


def _summary(out: dict[str, Any], locale: str) -> str:
    if "incidents" in out:
        return "\n".join(_summary(i, locale) for i in out["incidents"])
    if "deadlines" not in out:
        return "\n".join(f"{k}: {v}" for k, v in out.items())
    open_ = [d for d in out["deadlines"] if d["state"] == "open"]
    dues = sorted(
        (datetime.fromisoformat(d["due_at"]), d.get("tz") or "UTC") for d in open_ if d["due_at"]
    )
    return cli_summary(  # the next deadline shown in its authority's zone
        reference=out["id"],
        open_deadlines=len(open_),
        next_due=dues[0][0] if dues else None,
        locale=locale,
        tz=dues[0][1] if dues else "UTC",
    )


def _run(args: argparse.Namespace, handler: Handler) -> int:
    try:
        out, code = handler(args), 0
    except (SmtError, ValueError) as err:
        message = _one_line(str(err))
        print(f"smt: error: {message}", file=sys.stderr)
        out, code = {"error": message}, 1
    if args.json:
        print(json.dumps(out, default=str, ensure_ascii=False))
    elif code == 0:
        print(_summary(out, args.locale))
    return code


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="smt", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
