"""Breach operations on a session factory, each in one transaction: what tasks and CLI call.

Results are JSON-ready dicts holding ids, codes, counts and times only (no subject ids).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.orm import Session, sessionmaker

from compliance import breach_store as bs
from compliance.breach_escalation import alert_dicts, check_deadlines
from compliance.breach_notify import produce_notices
from compliance.db import transaction


class BreachSettings(BaseSettings):
    """Breach settings (env prefix ``SMT_``); to fold into ``ComplianceSettings``.

    - ``breach_notice_url`` (``SMT_BREACH_NOTICE_URL``): local path or fsspec URL for notices.
    - ``breach_escalation_hours`` (``SMT_BREACH_ESCALATION_HOURS``): alert window.
    - ``breach_authority_locale`` (``SMT_BREACH_AUTHORITY_LOCALE``): language of authority
      notifications.
    """

    model_config = SettingsConfigDict(env_prefix="SMT_", extra="ignore")

    breach_notice_url: str = Field(default=".smt/notices")
    breach_escalation_hours: float = 24.0
    breach_authority_locale: str = "en"


def report(
    factory: sessionmaker[Session], *, actor: str, now: datetime | None = None, **facts: Any
) -> dict[str, Any]:
    with transaction(factory) as s:
        return bs.describe(bs.report_breach(s, actor=actor, now=now, **facts))


def assess(
    factory: sessionmaker[Session],
    breach_id: str,
    *,
    actor: str,
    now: datetime | None = None,
    **risk: Any,
) -> dict[str, Any]:
    with transaction(factory) as s:
        incident = bs.get_incident(s, breach_id)
        return bs.describe(bs.assess_breach(s, incident, actor=actor, now=now, **risk))


def notify(
    factory: sessionmaker[Session],
    breach_id: str,
    *,
    output_url: str,
    actor: str,
    authority_locale: str = "en",
    late_reasons: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    with transaction(factory) as s:
        incident = bs.get_incident(s, breach_id)
        result = produce_notices(
            s,
            incident,
            output_url=output_url,
            actor=actor,
            now=now,
            authority_locale=authority_locale,
            late_reasons=late_reasons,
        )
        return {**result.as_json(), "status": incident.status, "phase": incident.phase}


def status(factory: sessionmaker[Session], breach_id: str) -> dict[str, Any]:
    with transaction(factory) as s:
        return bs.describe(bs.get_incident(s, breach_id))


def check(
    factory: sessionmaker[Session], *, window_hours: float, actor: str, now: datetime | None = None
) -> list[dict[str, Any]]:
    with transaction(factory) as s:
        return alert_dicts(check_deadlines(s, window_hours=window_hours, actor=actor, now=now))
