"""Prefect tasks of the breach flows: thin wrappers over ``compliance.breach_service``.

Tasks take the database URL and a breach id, never sessions nor subject ids (Prefect keeps
task and flow parameters in its own database, which an erasure never reaches; incidents are
registered with ``smt breach report``, their subjects stay in the store's ``breach_subjects``).  No result persistence and no cache (incidents
link to subjects); only writing notices (``OSError``) retries, with explicit delays.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from compliance import breach_service
from tasks.compliance_tasks import store  # one store per URL
from tasks.retry import retry_on_io

_PRIVATE = {"persist_result": False, "cache_policy": NO_CACHE}


@task(name="breach-assess", **_PRIVATE)
def assess(
    database_url: str, breach_id: str, actor: str, risk: dict[str, Any], now: datetime | None = None
) -> dict[str, Any]:
    return breach_service.assess(store(database_url), breach_id, actor=actor, now=now, **risk)


@task(
    name="breach-notify",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_io,
    **_PRIVATE,
)
def notify(
    database_url: str,
    breach_id: str,
    output_url: str,
    actor: str,
    authority_locale: str,
    late_reasons: str | None,
    now: datetime | None = None,
    final: bool = False,
    complement: str | None = None,
    business: str | None = None,
) -> dict[str, Any]:
    return breach_service.notify(
        store(database_url),
        breach_id,
        output_url=output_url,
        actor=actor,
        authority_locale=authority_locale,
        late_reasons=late_reasons,
        final=final,
        complement=complement,
        business=business,
        now=now,
    )


@task(name="breach-deadline-check", **_PRIVATE)
def check(
    database_url: str, window_hours: float, actor: str, now: datetime | None = None
) -> list[dict[str, Any]]:
    return breach_service.check(
        store(database_url), window_hours=window_hours, actor=actor, now=now
    )


@task(name="breach-status", **_PRIVATE)
def status(database_url: str, breach_id: str) -> dict[str, Any]:
    return breach_service.status(store(database_url), breach_id)
