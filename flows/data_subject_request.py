"""Data-subject request: one Prefect flow.

    claim (received/failed -> in_progress; one worker only)  ->  each remaining step in order
    (skipped when done)  ->  complete (audited)          on any failure: fail (audited), re-raise

Steps per type live in ``compliance.execution``: access/portability/know export a zip; erasure
and CCPA delete erase every recorded run's files, earlier exports and the store, scanning after;
rectification, restriction, objection and opt-out update the subject, which the inference gate
reads.  A dry run changes nothing and reports what would happen.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from compliance.settings import ComplianceSettings
from tasks import compliance_tasks as t


class DsrParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(description="id returned by `smt dsr submit`")
    dry_run: bool = Field(default=False, description="report what would be done; change nothing")
    database_url: str | None = Field(default=None, description="default: SMT_DATABASE_URL")
    export_dir: str | None = Field(default=None, description="default: SMT_EXPORT_DIR")
    worker: str | None = Field(
        default=None, description="name in the audit log (default: host:pid)"
    )


@flow(name="data-subject-request", log_prints=False)
def data_subject_request(params: DsrParams) -> dict[str, Any]:
    log = get_run_logger()
    settings = ComplianceSettings()
    url = params.database_url or settings.database_url
    export_dir = params.export_dir or settings.export_dir
    worker = params.worker or f"{socket.gethostname()}:{os.getpid()}"
    if params.dry_run:
        return t.preview_request(url, params.request_id)
    steps = t.claim_request(url, params.request_id, worker)
    if steps is None:
        log.info("request %s is not claimable (taken or closed); nothing done", params.request_id)
        return {**t.request_status(url, params.request_id), "claimed": False}
    summary: dict[str, Any] = {"steps": len(steps), "rows_removed": 0}
    try:
        for step in steps:
            detail = t.run_step(url, params.request_id, step, export_dir, worker)
            summary["rows_removed"] += int(detail.get("rows_removed", 0))
    except Exception as exc:
        t.fail_request(url, params.request_id, worker, type(exc).__name__)
        raise
    log.info("request %s: %d step(s) run", params.request_id, len(steps))
    return {**t.complete_request(url, params.request_id, worker, summary), "claimed": True}


if __name__ == "__main__":
    import sys

    print(data_subject_request(DsrParams(request_id=sys.argv[1])))
