"""Breach deadline check: one Prefect flow, scheduled hourly (deployments/prefect.yaml).

Raises an alert for every open breach deadline due within ``window_hours`` (a Prefect
artifact, the ``smt_breach_deadlines_due_soon`` gauge, a warning log line) and marks deadlines
already past as missed (audited; ``smt_breach_deadlines_missed_total``).  Alerts carry breach
ids, regimes, obligations and times only.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from compliance.breach_escalation import Alert, alerts_markdown
from compliance.breach_service import BreachSettings
from compliance.settings import ComplianceSettings
from tasks import breach_tasks as t


class DeadlineCheckParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_hours: float | None = Field(None, gt=0, description="SMT_BREACH_ESCALATION_HOURS")
    database_url: str | None = Field(None, description="default SMT_DATABASE_URL")
    now: AwareDatetime | None = Field(None, description="the clock (tests); default: now")
    actor: str = "breach-deadline-check"


@flow(name="breach-deadline-check", log_prints=False)
def breach_deadline_check(params: DeadlineCheckParams) -> dict[str, Any]:
    log = get_run_logger()
    window = params.window_hours or BreachSettings().breach_escalation_hours
    url = params.database_url or ComplianceSettings().database_url
    alerts = [Alert(**a) for a in t.check(url, window, params.actor, params.now)]
    for a in alerts:
        log.warning(
            "breach deadline %s: breach=%s regime=%s obligation=%s due_at=%s hours_left=%s",
            a.kind,
            a.breach_id,
            a.regime,
            a.obligation,
            a.due_at,
            a.hours_left,
        )
    create_markdown_artifact(
        key="breach-deadlines",
        markdown=alerts_markdown(alerts, window_hours=window),
        description="Breach deadlines escalated",
    )
    _export_metrics()
    return {
        "due_soon": sum(a.kind == "due_soon" for a in alerts),
        "missed": sum(a.kind == "missed" for a in alerts),
        "alerts": [a.__dict__ for a in alerts],
    }


def _export_metrics() -> None:
    """Write the breach metrics to SMT_METRICS_DIR/breach.prom (served by `smt up`)."""
    from tasks.settings import OpsSettings

    folder = OpsSettings().metrics_dir
    if folder:
        from prometheus_client import REGISTRY, write_to_textfile

        names = ["smt_breach_deadlines_due_soon", "smt_breach_deadlines_missed_total",
                 "smt_breach_escalations_total"]
        write_to_textfile(f"{folder}/breach.prom", REGISTRY.restricted_registry(names))


if __name__ == "__main__":
    print(breach_deadline_check(DeadlineCheckParams()))
