"""Secure batch inference: one Prefect flow.

    load + validate (quarantine)  ->  compliance gate  ->  shard  ->  one MPC session per shard
    (Dask)  ->  merge results atomically  ->  manifest, artifact, metrics, compliance record

Re-running a run id resumes it: a completed run returns its manifest, an unfinished one skips the
shards whose results exist.  See ``tasks.batch`` for the output layout.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from typing import Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.futures import as_completed
from prefect_dask import DaskTaskRunner
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from compliance.gate import Policy
from tasks import batch, metrics, regions, storage
from tasks import inference_tasks as t
from tasks.settings import InferenceSettings

Region = Literal["americas", "europe", "apac"]


class InferenceParams(BaseModel):
    """Parameters of one run (the CLI and deployments fill this)."""

    model_config = ConfigDict(extra="forbid")

    input_url: str = Field(description="CSV, JSON Lines or Parquet batch: local path or s3:// URL")
    output_url: str = Field(description="folder (local or s3://) that receives <run_id>/")
    model: str = Field("minilm", description="'minilm' or a Hugging Face save_pretrained folder")
    region: Region | None = Field(None, description="process only records resident here")
    shard_size: int = Field(32, ge=1, le=4096, description="records per MPC session")
    max_length: int = Field(128, ge=8, le=512, description="tokens per text (longer: truncated)")
    parties: Literal[2, 3] = 2
    run_id: str | None = Field(None, description="resume this run; default: a new id")
    consent_policy: Policy | None = Field(None, description="default: from settings")
    session_timeout: float = Field(1800.0, gt=0, description="seconds per MPC session")
    dry_run: bool = Field(False, description="validate, gate and plan shards; compute nothing")
    on_unavailable: Literal["wait", "refuse"] = Field(
        "wait", description="records whose residency no healthy region may take: 'wait' "
                            "excludes them (residency_unavailable; run again later), 'refuse' "
                            "fails the run before any computation")


def dask_runner(address: str | None = None, workers: int | None = None) -> DaskTaskRunner:
    """An existing cluster at ``address``, else a local one (one thread per worker process)."""
    if address:
        return DaskTaskRunner(address=address)
    n = workers or max(1, (os.cpu_count() or 1) // 3)
    return DaskTaskRunner(cluster_kwargs={"n_workers": n, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})


def _summary(manifest: dict) -> dict:
    counts = manifest["counts"]
    return {
        "run_id": manifest["run_id"], "status": manifest["status"],
        **{k: counts[k] for k in ("records_in", "records_ok", "records_quarantined",
                                  "records_excluded")},
        "results": manifest["outputs"]["results"], "quarantine": manifest["outputs"]["quarantine"],
        "manifest": manifest["outputs"]["manifest"],
        **{k: manifest["cost"][k] for k in ("rounds", "bytes", "seconds")},
    }


def _artifact(manifest: dict) -> None:
    c, cost = manifest["counts"], manifest["cost"]
    lines = [
        f"# Secure inference run `{manifest['run_id']}` ({manifest['status']})", "",
        f"Model `{manifest['model']}`, {manifest['parties']} parties + dealer, "
        f"{len(manifest['shards'])} shard(s).", "",
        "| records in | ok | quarantined | excluded |", "|---|---|---|---|",
        f"| {c['records_in']} | {c['records_ok']} | {c['records_quarantined']} | "
        f"{c['records_excluded']} |", "",
        f"Quarantine reasons: {c['quarantined_by_reason'] or 'none'}; "
        f"exclusion reasons: {c['excluded_by_reason'] or 'none'}.", "",
        f"MPC cost: {cost['rounds']} rounds, {cost['bytes']} bytes, {cost['seconds']} s in "
        f"sessions; flow wall time {manifest['timings']['total_seconds']} s.", "",
        f"Results: `{manifest['outputs']['results']}`",
    ]
    create_markdown_artifact(markdown="\n".join(lines), key="secure-inference-summary",
                             description="counts, cost and timings; no personal data")


@flow(name="secure-inference", persist_result=False, log_prints=False,
      task_runner=dask_runner(InferenceSettings().dask_address, InferenceSettings().dask_workers))
def secure_inference(params: InferenceParams) -> dict:
    """Run a batch through the secure engine; return the run summary (no personal data)."""
    log = get_run_logger()
    settings = InferenceSettings()
    so = storage.s3_options(settings.s3_endpoint_url)
    run_id = params.run_id or batch.new_run_id()
    paths = batch.RunPaths.for_run(params.output_url, run_id)
    done = batch.finished_manifest(paths, storage_options=so)
    if done is not None:
        log.info("run %s already completed; nothing to do (manifest %s)", run_id, paths.manifest)
        return _summary(done)

    started, started_at = time.perf_counter(), datetime.now(UTC)
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[f"{name}_seconds"] = round(now - since, 3)
        return now

    # The compliance store must know where this run writes before it writes (erasure, retention).
    t.record_run_for_compliance(run_id=run_id, output_url=params.output_url, region=params.region,
                                model=params.model, started_at=started_at, finished_at=None,
                                input_copy_url=paths.work_file("valid.parquet"))
    mark = started
    prepared = t.load_and_validate(params.input_url, paths, settings.max_text_chars, so)
    mark = lap("validate", mark)
    log.info("run %s: %d records in, %d valid, %d quarantined", run_id, prepared["records_in"],
             prepared["records_valid"], prepared["records_quarantined"])
    policy = params.consent_policy or settings.consent_policy
    gate = t.open_consent_gate(settings)
    rules = regions.load_rules(settings.regions_file)
    table = regions.load_table(settings.routing_table_url, so)
    gated = t.apply_gate(prepared["valid_url"], paths, gate, policy, params.region, so,
                         rules, table)
    mark = lap("gate", mark)
    waiting = gated["excluded_by_reason"].get(regions.WAITING, 0)
    if waiting:
        log.warning("run %s: %d record(s) wait: no region allowed for their residency is "
                    "healthy (routing table %s)", run_id, waiting, settings.routing_table_url)
        if params.on_unavailable == "refuse":
            raise regions.ResidencyUnavailable(
                f"{waiting} record(s) have no healthy region allowed for their residency; "
                "nothing was computed. Run again when failover-check reports the region "
                "healthy, or use on_unavailable='wait' to process the others now")
    log.info("compliance gate (%s policy): %d allowed, %d excluded %s", policy,
             gated["records_allowed"], gated["records_excluded"], gated["excluded_by_reason"])
    key = batch.engine_key(model=params.model, parties=params.parties,
                           max_length=params.max_length)
    shards = t.plan_shards(gated["allowed_url"], paths, params.shard_size, key, so,
                           model=params.model, max_length=params.max_length)
    mark = lap("plan", mark)

    outcomes: list[dict] = []
    failures: list[str] = []
    if not params.dry_run:
        services = batch.services_spec(settings, rules, params.region)
        session_options = {"lifetime_seconds": settings.session_lifetime,
                           "max_inferences": settings.session_inferences}
        log.info("run %s: sessions against %s", run_id,
                 f"model-owner {services['model_owner']}, dealer {services['dealer']}" if services
                 else "local services on loopback (embedded default)")
        futures = [t.run_shard.submit(s, params.model, params.parties, params.max_length,
                                      params.session_timeout, so, services, session_options)
                   for s in shards]
        bar = tqdm(total=len(futures), unit="shard", desc=f"run {run_id}", file=sys.stderr,
                   disable=None)  # a progress bar on a terminal only
        for n, future in enumerate(as_completed(futures), start=1):
            bar.update()
            try:
                outcome = future.result()
            except Exception as err:  # noqa: BLE001 - collected; the run fails after all shards
                failures.append(str(err))
                metrics.record_shard("failed")
                continue
            outcomes.append(outcome)
            metrics.record_shard(outcome["status"], outcome["cost"])
            log.info("shard %d %s (%d/%d)", outcome["index"], outcome["status"], n, len(shards))
        bar.close()
        mark = lap("shards", mark)

    counts = {
        "records_in": prepared["records_in"],
        "records_ok": sum(s["records"] for s in shards) if not failures else 0,
        "records_quarantined": prepared["records_quarantined"],
        "records_excluded": gated["records_excluded"],
        "quarantined_by_reason": prepared["quarantined_by_reason"],
        "excluded_by_reason": gated["excluded_by_reason"],
    }
    by_index = {o["index"]: o for o in outcomes}
    manifest = {
        "run_id": run_id, "input": params.input_url, "model": params.model,
        "parties": params.parties, "max_length": params.max_length,
        "shard_size": params.shard_size, "region": params.region, "consent_policy": policy,
        "counts": counts,
        "shards": [{"index": s["index"], "name": s["name"], "records": s["records"],
                    "status": by_index.get(s["index"], {}).get("status", "not_run"),
                    "cost": by_index.get(s["index"], {}).get("cost")} for s in shards],
        "cost": batch.total_cost([o for o in outcomes if o["status"] == "computed"]),
        "outputs": {"results": paths.results, "quarantine": paths.quarantine,
                    "manifest": paths.manifest},
        "versions": batch.software_versions(),
        "timings": timings,
    }
    if failures or params.dry_run:
        manifest.update(status="failed" if failures else "dry_run", errors=failures,
                        finished_at=datetime.now(UTC).isoformat())
        manifest["counts"]["records_ok"] = 0
        manifest["timings"]["total_seconds"] = round(time.perf_counter() - started, 3)
        t.write_manifest(manifest, paths, so)
        _artifact(manifest)
        if params.dry_run:  # nothing to resume: the texts' working copies go now
            t.cleanup_work(paths, so)
        if failures:
            metrics.record_run("failed")
            metrics.export(textfile=settings.metrics_textfile, pushgateway=settings.pushgateway_url)
            raise batch.ShardFailed(
                f"{len(failures)} of {len(shards)} shard(s) failed; finished shards are kept, "
                f"run again with --run-id {run_id} to resume. First error: {failures[0]}")
        return _summary(manifest)

    merged = t.merge_results(shards, paths, gated["records_allowed"], so)
    kinds = {o["cost"].get("kind") for o in outcomes}
    manifest["kind"] = kinds.pop() if len(kinds) == 1 else None
    manifest["counts"]["records_ok"] = merged["records_ok"]
    mark = lap("merge", mark)
    manifest["timings"]["total_seconds"] = round(time.perf_counter() - started, 3)
    manifest.update(status="completed", errors=[], finished_at=datetime.now(UTC).isoformat())
    t.write_manifest(manifest, paths, so)
    t.record_run_for_compliance(run_id=run_id, output_url=params.output_url, region=params.region,
                                model=params.model, started_at=started_at,
                                finished_at=datetime.now(UTC))
    t.cleanup_work(paths, so)
    _artifact(manifest)
    metrics.record_counts(ok=merged["records_ok"], quarantined=counts["records_quarantined"],
                          excluded=counts["records_excluded"])
    metrics.record_run("completed")
    metrics.export(textfile=settings.metrics_textfile, pushgateway=settings.pushgateway_url)
    log.info("run %s completed: %d results at %s; MPC %s", run_id, merged["records_ok"],
             paths.results, manifest["cost"])
    return _summary(manifest)


if __name__ == "__main__":
    from flows.cli_infer import main

    raise SystemExit(main())
