"""Prefect tasks of the secure-inference flow: thin wrappers over ``tasks.batch``.

Every task that touches records (text, ids) or shares persists no result and uses no cache;
tasks hand each other URLs and counts, never DataFrames.  Only I/O retries (``OSError``), with
explicit delays; validation errors and MPC aborts never do.
"""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from compliance.gate import ConsentGate, Policy
from tasks import batch, regions
from tasks.retry import IO_RETRY, SHARD_RETRY, retry_on_io, retry_shard
from tasks.settings import InferenceSettings

_PRIVATE = {"persist_result": False, "cache_policy": NO_CACHE}


@task(name="load-and-validate", retry_condition_fn=retry_on_io, **IO_RETRY, **_PRIVATE)
def load_and_validate(input_url: str, paths: batch.RunPaths, max_text_chars: int,
                      storage_options: dict) -> dict:
    return batch.prepare_batch(input_url, paths, max_text_chars=max_text_chars,
                               storage_options=storage_options)


@task(name="compliance-gate", **_PRIVATE)
def apply_gate(valid_url: str, paths: batch.RunPaths, gate: ConsentGate, policy: Policy,
               region: str | None, storage_options: dict,
               rules: regions.ResidencyRules | None = None,
               table: regions.RoutingTable | None = None) -> dict:
    return batch.gate_batch(valid_url, paths, gate=gate, policy=policy, region=region,
                            storage_options=storage_options, rules=rules, table=table)


@task(name="plan-shards", retry_condition_fn=retry_on_io, **IO_RETRY, **_PRIVATE)
def plan_shards(allowed_url: str, paths: batch.RunPaths, shard_size: int, key: str,
                storage_options: dict, model: str | None = None, max_length: int = 128) -> list[dict]:
    return batch.plan_shards(allowed_url, paths, shard_size=shard_size, key=key,
                             storage_options=storage_options, model=model, max_length=max_length)


@task(name="run-shard", task_run_name="run-shard-{shard[index]}", retry_condition_fn=retry_shard,
      **SHARD_RETRY, **_PRIVATE)
def run_shard(shard: dict, model: str, parties: int, max_length: int, timeout: float,
              storage_options: dict, services: dict | None = None,
              session_options: dict | None = None) -> dict:
    return batch.run_shard(shard, model=model, parties=parties, max_length=max_length,
                           timeout=timeout, storage_options=storage_options, services=services,
                           session_options=session_options)


@task(name="merge-results", retry_condition_fn=retry_on_io, **IO_RETRY, **_PRIVATE)
def merge_results(shards: list[dict], paths: batch.RunPaths, expected: int,
                  storage_options: dict) -> dict:
    return batch.merge_results(shards, paths, expected=expected, storage_options=storage_options)


@task(name="write-manifest", retry_condition_fn=retry_on_io, **IO_RETRY, persist_result=False)
def write_manifest(manifest: dict, paths: batch.RunPaths, storage_options: dict) -> str:
    from tasks import storage

    storage.write_json_atomic(paths.manifest, manifest, storage_options=storage_options)
    return paths.manifest


@task(name="cleanup-work", retry_condition_fn=retry_on_io, **IO_RETRY, **_PRIVATE)
def cleanup_work(paths: batch.RunPaths, storage_options: dict) -> None:
    batch.cleanup_work(paths, storage_options=storage_options)


def open_consent_gate(settings: InferenceSettings | None = None) -> ConsentGate:
    """The SQL-backed gate of the compliance store (``SMT_DATABASE_URL``; SQLite by default)."""
    from compliance.db import open_store
    from compliance.settings import ComplianceSettings
    from compliance.subjects import SqlConsentGate

    return SqlConsentGate(open_store(ComplianceSettings().database_url))


def record_run_for_compliance(*, run_id: str, output_url: str, region: str | None, model: str,
                              started_at: datetime, finished_at: datetime | None,
                              input_copy_url: str | None = None) -> None:
    """Tell the compliance store where this run writes personal data (erasure, retention)."""
    from compliance.db import open_store, transaction
    from compliance.runs import record_inference_run
    from compliance.settings import ComplianceSettings

    with transaction(open_store(ComplianceSettings().database_url)) as session:
        record_inference_run(session, run_id, output_url, region, model, started_at,
                             finished_at=finished_at, input_copy_url=input_copy_url)
