"""Region health for the failover check: work pool and worker heartbeats from the Prefect API,
and a write/read/delete probe of the region's storage.  Plain functions; the flow is
``flows/failover_check.py``.

Metrics (own registry, written as a textfile by the flow; labels are region names only):

* ``smt_region_up{region}``: 1 when the region may take work (pool ready, a fresh worker
  heartbeat, storage answers), else 0
* ``smt_region_workers_online{region}``: workers with a heartbeat younger than the threshold
* ``smt_region_storage_ok{region}``: 1 when the storage probe succeeded
* ``smt_residency_routed{residency,route_status}``: 1 for the residency's current status
  (``primary``, ``failover`` or ``waiting``), 0 for the others
* ``smt_failover_last_check_timestamp_seconds``: end of the last check
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from tasks import storage
from tasks.regions import RegionHealth, RoutingTable

REGISTRY = CollectorRegistry()
REGION_UP = Gauge("smt_region_up", "Region may take work (1) or not (0)", ["region"],
                  registry=REGISTRY)
WORKERS_ONLINE = Gauge("smt_region_workers_online", "Workers with a fresh heartbeat",
                       ["region"], registry=REGISTRY)
STORAGE_OK = Gauge("smt_region_storage_ok", "Storage probe succeeded (1) or failed (0)",
                   ["region"], registry=REGISTRY)
ROUTED = Gauge("smt_residency_routed", "Current route status of each residency (1: current)",
               ["residency", "route_status"], registry=REGISTRY)
LAST_CHECK = Gauge("smt_failover_last_check_timestamp_seconds", "End of the last check",
                   registry=REGISTRY)
ROUTE_STATUSES = ("primary", "failover", "waiting")


def pool_health(region: str, pool: str, *, stale_after: float,
                      now: datetime | None = None) -> tuple[str | None, int, str]:
    """(pool status, fresh workers, reason) of a region's work pool, from the Prefect API."""
    now = now or datetime.now(UTC)
    with get_client(sync_client=True) as client:
        try:
            wp = client.read_work_pool(pool)
        except ObjectNotFound:
            return None, 0, f"work pool {pool} does not exist"
        workers = client.read_workers_for_work_pool(pool)
    fresh = [w for w in workers if str(getattr(w.status, "value", w.status)) == "ONLINE"
             and w.last_heartbeat_time is not None
             and now - w.last_heartbeat_time <= timedelta(seconds=stale_after)]
    status = str(getattr(wp.status, "value", wp.status)) if wp.status else None
    if wp.is_paused:
        status = "PAUSED"
    reason = ""
    if status == "PAUSED":
        reason = f"work pool {pool} is paused"
    elif not fresh:
        reason = f"no worker of {pool} sent a heartbeat in the last {stale_after:g} s"
    return status, len(fresh), reason


def probe_storage(url: str | None, storage_options: dict | None = None) -> tuple[bool, str]:
    """Write, read back and delete a small object under ``url``; (ok, reason)."""
    if not url:
        return True, ""
    target = storage.join(url, "_smt_probe", f"{uuid.uuid4().hex}.txt")
    payload = b"smt storage probe"
    try:
        storage.write_bytes_atomic(target, payload, storage_options=storage_options)
        ok = storage.read_bytes(target, storage_options=storage_options) == payload
        storage.remove_tree(target, storage_options=storage_options)
    except Exception as err:  # noqa: BLE001 - any storage failure makes the region unhealthy
        return False, f"storage probe failed: {type(err).__name__}"
    return ok, "" if ok else "storage probe read back different bytes"


def region_health(region: str, pool_status: str | None, workers: int, pool_reason: str,
                  storage_ok: bool, storage_reason: str) -> RegionHealth:
    healthy = pool_status is not None and pool_status != "PAUSED" and workers > 0 and storage_ok
    reason = "; ".join(r for r in (pool_reason, storage_reason) if r)
    return RegionHealth(region=region, pool_status=pool_status, workers_online=workers,
                        storage_ok=storage_ok, healthy=healthy, reason=reason)


def record_metrics(table: RoutingTable, textfile: str | None = None) -> None:
    for name, h in table.regions.items():
        REGION_UP.labels(name).set(1 if h.healthy else 0)
        WORKERS_ONLINE.labels(name).set(h.workers_online)
        STORAGE_OK.labels(name).set(1 if h.storage_ok else 0)
    for home, route in table.routes.items():
        for status in ROUTE_STATUSES:
            ROUTED.labels(home, status).set(1 if route.status == status else 0)
    LAST_CHECK.set_to_current_time()
    if textfile:
        write_to_textfile(textfile, REGISTRY)


def table_markdown(table: RoutingTable) -> str:
    lines = [f"# Routing table ({table.decided_at.isoformat()})", "",
             "| region | healthy | pool | workers online | storage | reason |",
             "|---|---|---|---|---|---|"]
    for h in table.regions.values():
        lines.append(f"| {h.region} | {'yes' if h.healthy else 'NO'} | {h.pool_status} | "
                     f"{h.workers_online} | {'ok' if h.storage_ok else 'FAILED'} | "
                     f"{h.reason or '-'} |")
    lines += ["", "| residency | route | status | allowed |", "|---|---|---|---|"]
    for r in table.routes.values():
        lines.append(f"| {r.residency} | {r.route or '(records wait)'} | {r.status} | "
                     f"{', '.join([r.primary, *r.fallbacks])} |")
    return "\n".join(lines)
