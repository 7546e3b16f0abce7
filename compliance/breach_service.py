"""Breach operations on a session factory, each in one transaction: what tasks and CLI call.

Results are JSON-ready dicts holding ids, codes, counts and times only (no subject ids).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.orm import Session, sessionmaker

from compliance import breach_checks as checks
from compliance import breach_ops as ops
from compliance import breach_store as bs
from compliance.breach_escalation import alert_dicts, check_deadlines
from compliance.breach_notify import produce_notices
from compliance.db import transaction
from compliance.i18n import normalize_locale
from mpc.errors import InputError


class BreachSettings(BaseSettings):
    """Breach settings (env prefix ``SMT_``); to fold into ``ComplianceSettings``.

    - ``breach_notice_url`` (``SMT_BREACH_NOTICE_URL``): local path or fsspec URL for notices.
    - ``breach_escalation_hours`` (``SMT_BREACH_ESCALATION_HOURS``): alert window.
    - ``breach_authority_locale`` (``SMT_BREACH_AUTHORITY_LOCALE``): language of the GDPR
      lead supervisory authority's notifications (the PPC, PDPC, ANPD and California's Attorney
      General always get Japanese, English, Portuguese and English).
    - ``breach_contact`` (``SMT_BREACH_CONTACT``): the contact point every notice names when a
      report gives none: real contact details (an e-mail address, web address or telephone
      number), e.g. ``Data Protection Officer, dpo@example.org, +33 1 23 45 67 89``.  Unset:
      no default, and ``notify`` refuses until the incident has one.
    - ``breach_business_name`` (``SMT_BREACH_BUSINESS_NAME``): the business's name, which
      California's resident notice must give (Cal. Civ. Code 1798.82(d)(2)(A)) with the
      contact point; ``notify`` refuses California notices without it.
    - ``breach_small_agent`` (``SMT_BREACH_SMALL_AGENT``): we are a small processing agent
      under LGPD (ANPD Res. 2/2022): new incidents get doubled LGPD deadlines.
    """

    model_config = SettingsConfigDict(env_prefix="SMT_", extra="ignore")

    breach_notice_url: str = Field(default=".smt/notices")
    breach_escalation_hours: float = 24.0
    breach_authority_locale: str = "en"
    breach_contact: str | None = None
    breach_business_name: str | None = None
    breach_small_agent: bool = False

    @field_validator("breach_contact")
    @classmethod
    def _real_contact(cls, value: str | None) -> str | None:
        try:
            return checks.contact(value) or None
        except InputError as err:  # pydantic reports ValueError as a validation error
            raise ValueError(str(err)) from None

    @field_validator("breach_business_name")
    @classmethod
    def _business(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return checks.one_line(value, "business name", max_len=checks.MAX_CONTACT)
        except InputError as err:
            raise ValueError(str(err)) from None

    @field_validator("breach_authority_locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        try:
            return normalize_locale(value)
        except InputError as err:
            raise ValueError(str(err)) from None


def report(
    factory: sessionmaker[Session], *, actor: str, now: datetime | None = None, **facts: Any
) -> dict[str, Any]:
    with transaction(factory) as s:
        return bs.describe(ops.report_breach(s, actor=actor, now=now, **facts))


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
        return bs.describe(ops.assess_breach(s, incident, actor=actor, now=now, **risk))


def notify(
    factory: sessionmaker[Session],
    breach_id: str,
    *,
    output_url: str,
    actor: str,
    authority_locale: str = "en",
    late_reasons: str | None = None,
    final: bool = False,
    complement: str | None = None,
    business: str | None = None,
    notified_otherwise: int | None = None,
    channel: str | None = None,
    otherwise_regimes: list[str] | None = None,
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
            final=final,
            complement=complement,
            business=business,
            notified_otherwise=notified_otherwise,
            channel=channel,
            otherwise_regimes=otherwise_regimes,
        )
        return {**result.as_json(), "status": incident.status, "phase": incident.phase}


def update(
    factory: sessionmaker[Session],
    breach_id: str,
    *,
    actor: str,
    now: datetime | None = None,
    **facts: Any,
) -> dict[str, Any]:
    with transaction(factory) as s:
        incident = bs.get_incident(s, breach_id)
        return bs.describe(ops.update_breach(s, incident, actor=actor, now=now, **facts))


def close(
    factory: sessionmaker[Session],
    breach_id: str,
    *,
    reason: str,
    actor: str,
    unmet_ok: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    with transaction(factory) as s:
        incident = bs.get_incident(s, breach_id)
        return bs.describe(
            ops.close_breach(s, incident, reason=reason, unmet_ok=unmet_ok, actor=actor, now=now)
        )


def list_incidents(factory: sessionmaker[Session], *, status: str | None = None) -> dict[str, Any]:
    with transaction(factory) as s:
        rows = ops.list_breaches(s, status=status)
        return {"incidents": [bs.describe(i) for i in rows]}


def status(factory: sessionmaker[Session], breach_id: str) -> dict[str, Any]:
    with transaction(factory) as s:
        return bs.describe(bs.get_incident(s, breach_id))


def check(
    factory: sessionmaker[Session], *, window_hours: float, actor: str, now: datetime | None = None
) -> list[dict[str, Any]]:
    with transaction(factory) as s:
        return alert_dicts(check_deadlines(s, window_hours=window_hours, actor=actor, now=now))
