"""``smt consent|dsr|retention|audit``: the compliance commands.

    smt consent grant|withdraw --subject S --purpose P [--source SRC]
    smt consent show --subject S
    smt consent reinstate --subject S --reason R   (objection withdrawn / opted back in)
    smt dsr submit --type T --subject S --regime R [--received-at ISO] [--time-zone TZ]
    smt dsr run ID [--dry-run]          (the data-subject-request Prefect flow)
    smt dsr status ID | smt dsr list [--status S] | smt dsr extend ID --reason R
    smt dsr acknowledge ID [--at ISO]   (CCPA receipt confirmation sent)
    smt dsr lift-restriction --subject S --reason R [--ground request:ID]
    smt retention run [--dry-run]       (the retention-cleanup Prefect flow)
    smt audit verify                    (exit 1 when the chain is broken)

Every command takes ``--json``: the last line of stdout is then one JSON object.  Exit status 0
on success, 1 on a refused or failed operation (the message on stderr says what to do).  The
store is ``SMT_DATABASE_URL`` (SQLite under ./.smt by default).  ``flows/cli.py`` calls
:func:`register`; ``python -m flows.cli_compliance`` runs these commands alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from compliance import audit, requests, restriction, service
from compliance.db import open_store, transaction
from compliance.errors import ComplianceError
from compliance.models import DataSubjectRequest, Regime, RequestStatus, RequestType
from compliance.settings import ComplianceSettings
from compliance.subjects import (
    describe_subject,
    ensure_subject,
    get_subject,
    record_consent,
    reinstate,
)
from mpc.errors import SmtError

Handler = Callable[[argparse.Namespace, ComplianceSettings], tuple[int, dict[str, Any]]]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``consent``, ``dsr``, ``retention`` and ``audit`` to the ``smt`` parser."""
    consent = subparsers.add_parser("consent", help="record or show a subject's consent")
    csub = consent.add_subparsers(dest="consent_command", required=True)
    for name, helptext in (("grant", "record consent given"), ("withdraw", "record withdrawal")):
        p = _leaf(csub, name, helptext, _consent_change)
        p.add_argument("--subject", required=True, help="pseudonymous subject id")
        p.add_argument("--purpose", default="secure_inference")
        p.add_argument("--source", default="cli", help="where the consent was collected")
        p.add_argument("--time-zone", help="IANA time zone of a new subject")
    p = _leaf(csub, "show", "flags, current consents and their history", _consent_show)
    p.add_argument("--subject", required=True)
    p = _leaf(csub, "reinstate", "the subject withdrew their objection or opted back in: clear "
              "it, and any objection kept after an erasure", _consent_reinstate)
    p.add_argument("--subject", required=True)
    p.add_argument("--reason", required=True, help="how the subject withdrew it (audited)")

    dsr = subparsers.add_parser("dsr", help="data-subject requests")
    dsub = dsr.add_subparsers(dest="dsr_command", required=True)
    p = _leaf(dsub, "submit", "record a request and compute its deadlines", _dsr_submit)
    p.add_argument("--type", required=True, choices=[t.value for t in RequestType])
    p.add_argument("--subject", required=True)
    p.add_argument("--regime", required=True, choices=[r.value for r in Regime])
    p.add_argument("--received-at", type=_aware, help="ISO time with offset (default: now)")
    p.add_argument("--time-zone", help="subject's IANA time zone (default: stored or regime's)")
    p.add_argument("--country", help="subject's ISO 3166 alpha-2 country (its public holidays)")
    p.add_argument("--changes", help='rectification: JSON, e.g. {"locale":"fr"}')
    p = _leaf(dsub, "run", "execute a request (resumes where it stopped)", _dsr_run)
    p.add_argument("id")
    p.add_argument("--dry-run", action="store_true", help="report what would be done only")
    p = _leaf(dsub, "status", "a request's status, deadlines and finished steps", _dsr_status)
    p.add_argument("id")
    p = _leaf(dsub, "list", "requests, newest first", _dsr_list)
    p.add_argument("--status", help="only requests in this status")
    p = _leaf(dsub, "extend", "extend the answer deadline once, with a reason", _dsr_extend)
    p.add_argument("id")
    p.add_argument("--reason", required=True)
    p = _leaf(dsub, "acknowledge", "record the receipt confirmation sent (CCPA regs 7021(a))",
              _dsr_acknowledge)
    p.add_argument("id")
    p.add_argument("--at", type=_aware, help="when it was sent, ISO with offset (default: now)")
    p = _leaf(dsub, "lift-restriction",
              "inform the subject and lift a restriction of processing (GDPR Art. 18(3))",
              _dsr_lift_restriction)
    p.add_argument("--subject", required=True)
    p.add_argument("--reason", required=True, help="told to the subject in the notice")
    p.add_argument("--ground", action="append",
                   help="lift only this ground (e.g. request:<id>); default: all")

    retention = subparsers.add_parser("retention", help="retention cleanup")
    rsub = retention.add_subparsers(dest="retention_command", required=True)
    p = _leaf(rsub, "run", "delete what is past its retention period", _retention_run)
    p.add_argument("--dry-run", action="store_true", help="count only; delete nothing")

    audit_p = subparsers.add_parser("audit", help="the hash-chained audit log")
    asub = audit_p.add_subparsers(dest="audit_command", required=True)
    _leaf(asub, "verify", "check the chain and its anchors; exit 1 when broken", _audit_verify)
    _leaf(asub, "checkpoint", "anchor the chain's head outside the database (run on a schedule)",
          _audit_checkpoint)
    _leaf(asub, "rekey", "once after upgrading: verify the old unkeyed chain, re-hash it under "
          "the audit key", _audit_rekey)


def _leaf(
    sub: argparse._SubParsersAction, name: str, helptext: str, handler: Handler
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=helptext, description=helptext)
    p.add_argument("--json", action="store_true", help="last stdout line: one JSON object")
    p.set_defaults(func=lambda args: _run(args, handler))
    return p


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give an offset, e.g. 2026-11-25T10:00:00-08:00")
    return value


def _run(args: argparse.Namespace, handler: Handler) -> int:
    try:
        code, out = handler(args, ComplianceSettings())
    except (SmtError, ValueError) as err:
        message = _one_line(err)
        print(f"smt: error: {message}", file=sys.stderr)
        code, out = 1, {"error": message}
    if args.json:
        print(json.dumps(out, default=str))
    else:
        for key, value in out.items():
            print(
                f"{key}: {json.dumps(value, default=str) if isinstance(value, dict | list) else value}"
            )
    return code


def _one_line(err: Exception) -> str:
    """The error as one line (a settings error names the first bad setting only)."""
    if isinstance(err, ValidationError) and err.errors():
        first = err.errors()[0]
        return str(first.get("ctx", {}).get("error") or first["msg"])
    return " ".join(str(err).split())


def _changes(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ComplianceError(
            f'--changes is not valid JSON ({exc.msg}); give e.g. {{"locale": "fr"}}'
        ) from None
    if not isinstance(value, dict):
        raise ComplianceError('--changes must be a JSON object, e.g. {"locale": "fr"}')
    return value


def _consent_reinstate(args: argparse.Namespace, s: ComplianceSettings) -> tuple[int, dict[str, Any]]:
    with transaction(open_store(s.database_url)) as session:
        return 0, reinstate(session, args.subject, reason=args.reason, actor=s.actor)


def _consent_change(args: argparse.Namespace, s: ComplianceSettings) -> tuple[int, dict[str, Any]]:
    given = args.consent_command == "grant"
    with transaction(open_store(s.database_url)) as session:
        if args.time_zone:
            ensure_subject(session, args.subject, time_zone=args.time_zone, actor=s.actor)
        c = record_consent(
            session, args.subject, args.purpose, given=given, source=args.source, actor=s.actor
        )
        return 0, {
            "subject_id": args.subject,
            "purpose": c.purpose,
            "given": c.given,
            "at": c.recorded_at.isoformat(),
        }


def _consent_show(args: argparse.Namespace, s: ComplianceSettings) -> tuple[int, dict[str, Any]]:
    with open_store(s.database_url)() as session:
        return 0, describe_subject(session, args.subject)


def _dsr_submit(args: argparse.Namespace, s: ComplianceSettings) -> tuple[int, dict[str, Any]]:
    with transaction(open_store(s.database_url)) as session:
        request = requests.submit(
            session,
            subject_id=args.subject,
            rtype=args.type,
            regime=args.regime,
            received_at=args.received_at,
            time_zone=args.time_zone,
            country=args.country,
            controller_time_zone=s.controller_time_zone,
            payload={"changes": changes} if (changes := _changes(args.changes)) else None,
            actor=s.actor,
        )
        return 0, _short(requests.describe(request))


def _short(described: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": described["id"],
        "status": described["status"],
        "deadlines": [
            {"obligation": d["obligation"], "due_at": d["due_at"], "state": d["state"]}
            for d in described["deadlines"]
        ],
    }


def _dsr_run(args: argparse.Namespace, s: ComplianceSettings) -> tuple[int, dict[str, Any]]:
    from flows.data_subject_request import DsrParams, data_subject_request

    result = data_subject_request(DsrParams(request_id=args.id, dry_run=args.dry_run))
    if args.dry_run:
        return 0, result
    out = {"id": result["id"], "status": result["status"], "export": result.get("export")}
    return (0 if result["status"] == "completed" else 1), out


def _dsr_status(args: argparse.Namespace, s: ComplianceSettings) -> tuple[int, dict[str, Any]]:
    return 0, service.status(open_store(s.database_url), args.id)


def _dsr_list(args: argparse.Namespace, s: ComplianceSettings) -> tuple[int, dict[str, Any]]:
    with open_store(s.database_url)() as session:
        stmt = select(DataSubjectRequest).order_by(DataSubjectRequest.received_at.desc())
        if args.status:
            if args.status not in {st.value for st in RequestStatus}:
                raise ComplianceError(
                    f"unknown status {args.status!r}; use one of"
                    f" {', '.join(st.value for st in RequestStatus)}"
                )
            stmt = stmt.where(DataSubjectRequest.status == args.status)
        rows = [_short(requests.describe(r)) for r in session.execute(stmt).scalars()]
    return 0, {"requests": rows}


def _dsr_extend(args: argparse.Namespace, s: ComplianceSettings) -> tuple[int, dict[str, Any]]:
    with transaction(open_store(s.database_url)) as session:
        request = requests.get_request(session, args.id, for_update=True)
        requests.transition(session, request, "extend", actor=s.actor, reason=args.reason)
        return 0, _short(requests.describe(request))


def _dsr_acknowledge(args: argparse.Namespace, s: ComplianceSettings) -> tuple[int, dict[str, Any]]:
    with transaction(open_store(s.database_url)) as session:
        request = requests.get_request(session, args.id, for_update=True)
        requests.transition(session, request, "acknowledge", actor=s.actor, at=args.at)
        return 0, _short(requests.describe(request))


def _dsr_lift_restriction(
    args: argparse.Namespace, s: ComplianceSettings
) -> tuple[int, dict[str, Any]]:
    with transaction(open_store(s.database_url)) as session:
        subject = get_subject(session, args.subject)
        return 0, restriction.lift(
            session, subject, reason=args.reason, actor=s.actor, now=datetime.now(UTC),
            grounds=args.ground,
        )


def _retention_run(args: argparse.Namespace, s: ComplianceSettings) -> tuple[int, dict[str, Any]]:
    from flows.retention_cleanup import RetentionParams, retention_cleanup

    return 0, retention_cleanup(RetentionParams(dry_run=args.dry_run))


def _audit_verify(args: argparse.Namespace, s: ComplianceSettings) -> tuple[int, dict[str, Any]]:
    with open_store(s.database_url)() as session:
        report = audit.verify(session, settings=s)
    return (0 if report.ok else 1), report.as_json()


def _audit_checkpoint(args: argparse.Namespace, s: ComplianceSettings) -> tuple[int, dict[str, Any]]:
    with open_store(s.database_url)() as session:
        report = audit.verify(session, settings=s)
        if not report.ok:  # never anchor a broken chain: it would bless the damage
            return 1, {**report.as_json(), "anchored": None}
        record = audit.checkpoint(session, s)
    return 0, {"anchored": record, "anchor_url": s.audit_anchor_url}


def _audit_rekey(args: argparse.Namespace, s: ComplianceSettings) -> tuple[int, dict[str, Any]]:
    with transaction(open_store(s.database_url)) as session:
        n = audit.rekey(session, s, actor=s.actor)
    return 0, {"rekeyed": n}


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
