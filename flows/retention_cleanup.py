"""Retention cleanup: one Prefect flow (schedule it daily).

Deletes run files (inputs, results, quarantine) and audit entries past their retention period
(``compliance.retention``), idempotently; a dry run returns the same counts and deletes nothing.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from compliance.settings import ComplianceSettings
from tasks import compliance_tasks as t


class RetentionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = Field(
        default=True, description="report counts only (the default: opt in to delete)"
    )
    database_url: str | None = Field(default=None, description="default: SMT_DATABASE_URL")
    actor: str = "retention-cleanup"


@flow(name="retention-cleanup", log_prints=False)
def retention_cleanup(params: RetentionParams) -> dict[str, Any]:
    url = params.database_url or ComplianceSettings().database_url
    report = t.run_retention(url, params.dry_run, params.actor)
    get_run_logger().info(
        "retention %s: %s", "dry run" if params.dry_run else "deleted", report["deleted"]
    )
    return report


if __name__ == "__main__":
    print(retention_cleanup(RetentionParams()))
