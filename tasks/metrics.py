"""Prometheus metrics of batch inference.  Labels never carry personal data.

Metric names (the alert rules and dashboards in ``deployments/`` may refer to exactly these):

* ``smt_inference_records_total{outcome}``: records by outcome ``ok``, ``quarantined``,
  ``excluded``
* ``smt_inference_shards_total{status}``: shards ``computed``, ``skipped`` (resumed) or ``failed``
* ``smt_inference_runs_total{status}``: flow runs ``completed`` or ``failed``
* ``smt_mpc_session_seconds``: histogram of MPC session wall time per shard
* ``smt_mpc_bytes_total`` / ``smt_mpc_rounds_total``: communication of the computing parties
* ``smt_inference_last_run_timestamp_seconds``: end of the last completed run

They live in their own registry so that a run can write them to a node-exporter textfile or push
them to a Pushgateway (:func:`export`).
"""

from __future__ import annotations

import logging

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    push_to_gateway,
    write_to_textfile,
)

REGISTRY = CollectorRegistry()

RECORDS = Counter("smt_inference_records", "Records by outcome", ["outcome"], registry=REGISTRY)
SHARDS = Counter("smt_inference_shards", "Shards by status", ["status"], registry=REGISTRY)
RUNS = Counter("smt_inference_runs", "Flow runs by final status", ["status"], registry=REGISTRY)
SESSION_SECONDS = Histogram(
    "smt_mpc_session_seconds", "Wall time of one MPC session (one shard)",
    buckets=(5, 10, 20, 40, 80, 160, 320, 640, 1280), registry=REGISTRY)
MPC_BYTES = Counter("smt_mpc_bytes", "Bytes sent by the computing parties", registry=REGISTRY)
MPC_ROUNDS = Counter("smt_mpc_rounds", "Communication rounds", registry=REGISTRY)
LAST_RUN = Gauge("smt_inference_last_run_timestamp_seconds", "End of the last completed run",
                 registry=REGISTRY)

log = logging.getLogger(__name__)


def record_counts(*, ok: int, quarantined: int, excluded: int) -> None:
    RECORDS.labels("ok").inc(ok)
    RECORDS.labels("quarantined").inc(quarantined)
    RECORDS.labels("excluded").inc(excluded)


def record_shard(status: str, cost: dict | None = None) -> None:
    SHARDS.labels(status).inc()
    if cost and status == "computed":
        SESSION_SECONDS.observe(float(cost.get("seconds", 0.0)))
        MPC_BYTES.inc(int(cost.get("bytes", 0)))
        MPC_ROUNDS.inc(int(cost.get("rounds", 0)))


def record_run(status: str) -> None:
    RUNS.labels(status).inc()
    if status == "completed":
        LAST_RUN.set_to_current_time()


def export(*, textfile: str | None, pushgateway: str | None, job: str = "smt_inference") -> None:
    """Write the registry to a textfile and/or push it; failures are logged, not raised."""
    if textfile:
        write_to_textfile(textfile, REGISTRY)
    if pushgateway:
        try:
            push_to_gateway(pushgateway, job=job, registry=REGISTRY)
        except OSError as err:
            log.warning("could not push metrics to %s: %s", pushgateway, err)
