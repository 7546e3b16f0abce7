"""Failover check: one Prefect flow, scheduled every 5 minutes (deployments/prefect.yaml).

    per region: work pool + worker heartbeats (Prefect API), storage probe  ->  decide routes
    (residency rules: a route is always an allowed region; none healthy: records wait)  ->
    persist the routing table (read by secure-inference)  ->  metrics, artifact
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, ConfigDict, Field

from tasks import failover, regions, storage
from tasks.settings import OpsSettings


class FailoverParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stale_after_seconds: float = Field(
        90.0, gt=0, description="a worker without a heartbeat this long counts as down")
    storage_urls: dict[str, str] | None = Field(
        None, description="probe target per region; default: storage_url in the regions file")
    routing_table_url: str | None = Field(None, description="default: SMT_ROUTING_TABLE_URL")
    dry_run: bool = Field(False, description="decide and report; do not persist the table")


@task(name="check-region", retries=1, retry_delay_seconds=[5], persist_result=False)
def check_region(region: str, pool: str, storage_url: str | None, stale_after: float,
                       storage_options: dict) -> regions.RegionHealth:
    status, workers, pool_reason = failover.pool_health(region, pool,
                                                              stale_after=stale_after)
    ok, storage_reason = failover.probe_storage(storage_url, storage_options)
    return failover.region_health(region, status, workers, pool_reason, ok, storage_reason)


@task(name="persist-routing-table", retries=2, retry_delay_seconds=[2, 10],
      persist_result=False)
def persist_table(table: regions.RoutingTable, url: str, storage_options: dict) -> str:
    storage.write_json_atomic(url, table.model_dump(mode="json"), storage_options=storage_options)
    return url


@flow(name="failover-check", log_prints=False)
def failover_check(params: FailoverParams) -> dict[str, Any]:
    log = get_run_logger()
    settings = OpsSettings()
    rules = regions.load_rules(settings.regions_file)
    so = storage.s3_options(settings.s3_endpoint_url)
    urls = params.storage_urls or {}
    health: dict[str, regions.RegionHealth] = {}
    for name, cfg in rules.regions.items():
        health[name] = check_region(name, cfg.work_pool, urls.get(name, cfg.storage_url),
                                          params.stale_after_seconds, so)
        level = log.info if health[name].healthy else log.warning
        level("region %s: %s", name, "healthy" if health[name].healthy else health[name].reason)
    table = regions.decide_routes(rules, health)
    url = params.routing_table_url or settings.routing_table_url
    if not params.dry_run:
        persist_table(table, url, so)
    textfile = storage.join(settings.metrics_dir, "failover.prom") if settings.metrics_dir \
        else None
    failover.record_metrics(table, textfile)
    create_markdown_artifact(markdown=failover.table_markdown(table),
                                   key="failover-routing",
                                   description="region health and routes; no personal data")
    for r in table.routes.values():
        if r.status != "primary":
            log.warning("residency %s: %s%s", r.residency, r.status,
                        f" -> {r.route}" if r.route else " (records wait)")
    return {"routing_table": None if params.dry_run else url,
            "routes": {k: v.route for k, v in table.routes.items()},
            "status": {k: v.status for k, v in table.routes.items()},
            "healthy": {k: v.healthy for k, v in health.items()}}


if __name__ == "__main__":
    print(failover_check(FailoverParams()))
