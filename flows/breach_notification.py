"""Breach notification: one Prefect flow, for an incident already in the compliance store.

Takes only the breach id (registered with ``smt breach report``): the affected subjects are
read from the store's ``breach_subjects`` inside the tasks, so no subject id reaches Prefect's
flow or task parameters, results, logs or artifacts (Prefect keeps those in its own database,
which an erasure never reaches).  Records the risk assessment when given, then produces the
authority notification(s) and every affected subject's notice in the subject's own locale,
written to the notice store and recorded.  ``dry_run`` stops after the deadlines: nothing is
sent or written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from compliance.breach_service import BreachSettings
from compliance.settings import ComplianceSettings
from tasks import breach_tasks as t


class RiskParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    likelihood: int = Field(ge=1, le=4)
    severity: int = Field(ge=1, le=4)
    high_risk: bool | None = None
    encrypted: bool | None = None
    risk_removed: bool | None = None
    disproportionate_effort: bool | None = None
    unlawful_purpose: bool | None = None
    assessed_at: AwareDatetime | None = Field(None, description="when assessed; default now")


class BreachNotificationParams(BaseModel):
    """Incident facts and subjects are not parameters: they are in the store already."""

    model_config = ConfigDict(extra="forbid")

    breach_id: str = Field(
        min_length=1, max_length=32, description="the id `smt breach report` printed"
    )
    risk: RiskParams | None = None
    late_reasons: str | None = None
    complement: str | None = Field(None, description="complementary information for an update")
    final: bool = Field(False, description="produce the APPI final report only")
    authority_locale: str | None = Field(None, description="default SMT_BREACH_AUTHORITY_LOCALE")
    output_url: str | None = Field(None, description="default SMT_BREACH_NOTICE_URL")
    database_url: str | None = Field(None, description="default SMT_DATABASE_URL")
    now: AwareDatetime | None = Field(None, description="the clock (tests); default: now")
    actor: str = "breach-notification"
    dry_run: bool = False


@flow(name="breach-notification", log_prints=False)
def breach_notification(params: BreachNotificationParams) -> dict[str, Any]:
    log = get_run_logger()
    settings = BreachSettings()
    url = params.database_url or ComplianceSettings().database_url
    now: datetime | None = params.now
    breach_id = params.breach_id
    if params.risk is not None:
        described = t.assess(url, breach_id, params.actor, params.risk.model_dump(), now)
    else:
        described = t.status(url, breach_id)
    log.info(
        "breach %s: %s, %d deadline(s)", breach_id, described["status"], len(described["deadlines"])
    )
    if params.dry_run:
        return {"id": breach_id, "deadlines": described["deadlines"], "notified": None}
    result = t.notify(
        url,
        breach_id,
        params.output_url or settings.breach_notice_url,
        params.actor,
        params.authority_locale or settings.breach_authority_locale,
        params.late_reasons,
        now,
        params.final,
        params.complement,
        settings.breach_business_name,
    )
    log.info(
        "breach %s: %d authority and %d subject notice(s) written",
        breach_id,
        result["authority_notices"],
        result["subject_notices"],
    )
    return {"id": breach_id, "deadlines": described["deadlines"], "notified": result}


if __name__ == "__main__":
    import sys

    print(breach_notification(BreachNotificationParams.model_validate_json(sys.argv[1])))
