"""Prefect tasks of the compliance flows: thin wrappers over ``compliance.service`` and
``compliance.retention``.

Tasks take the database URL (a string), never sessions or frames.  Every task touching a
subject's data persists no result and uses no cache.  Only file steps retry (``OSError``, with
explicit delays); state-machine refusals and erasure scans never do.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.orm import Session, sessionmaker

from compliance import retention, service
from compliance.db import open_store, transaction
from tasks.retry import retry_on_io


@lru_cache(maxsize=8)
def store(database_url: str) -> sessionmaker[Session]:
    """One migrated session factory per URL and process."""
    return open_store(database_url)


@task(name="dsr-claim", persist_result=False, cache_policy=NO_CACHE)
def claim_request(database_url: str, request_id: str, worker: str) -> list[str] | None:
    return service.claim(store(database_url), request_id, worker=worker)


@task(
    name="dsr-step",
    retry_condition_fn=retry_on_io,
    retries=2,
    retry_delay_seconds=[2, 10],
    persist_result=False,
    cache_policy=NO_CACHE,
)
def run_step(
    database_url: str, request_id: str, step: str, export_dir: str, worker: str
) -> dict[str, Any]:
    return service.run_step(
        store(database_url), request_id, step, export_dir=export_dir, actor=worker
    )


@task(name="dsr-complete", persist_result=False, cache_policy=NO_CACHE)
def complete_request(
    database_url: str, request_id: str, worker: str, summary: dict[str, Any]
) -> dict[str, Any]:
    return service.complete(store(database_url), request_id, actor=worker, summary=summary)


@task(name="dsr-fail", persist_result=False, cache_policy=NO_CACHE)
def fail_request(database_url: str, request_id: str, worker: str, reason: str) -> None:
    service.fail(store(database_url), request_id, actor=worker, reason=reason)


@task(name="dsr-preview", persist_result=False, cache_policy=NO_CACHE)
def preview_request(database_url: str, request_id: str) -> dict[str, Any]:
    return service.preview(store(database_url), request_id)


@task(name="dsr-status", persist_result=False, cache_policy=NO_CACHE)
def request_status(database_url: str, request_id: str) -> dict[str, Any]:
    return service.status(store(database_url), request_id)


@task(
    name="retention-run",
    retry_condition_fn=retry_on_io,
    retries=2,
    retry_delay_seconds=[2, 10],
    persist_result=False,
    cache_policy=NO_CACHE,
)
def run_retention(database_url: str, dry_run: bool, actor: str) -> dict[str, Any]:
    with transaction(store(database_url)) as session:
        return retention.run(session, dry_run=dry_run, actor=actor).as_json()
