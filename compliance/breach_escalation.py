"""Escalation of breach deadlines: which open deadlines are due soon, which were missed.

:func:`check_deadlines` marks missed deadlines (audited), sets the Prometheus gauges and
counters below and returns the alerts; the flow ``flows/breach_deadline_check.py`` turns them
into a Prefect artifact and log lines.  Alerts carry breach ids, regimes, obligations and times
only: no personal data in metric labels, logs or artifacts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from prometheus_client import Counter, Gauge
from sqlalchemy.orm import Session

from compliance.breach_deadlines import DeadlineState, classify
from compliance.breach_store import mark_deadline, open_deadlines

BREACH_DUE_SOON = Gauge(
    "smt_breach_deadlines_due_soon",
    "Open breach-notification deadlines inside the escalation window, by regime and obligation",
    ["regime", "obligation"],
)
BREACH_MISSED = Counter(
    "smt_breach_deadlines_missed_total",
    "Breach-notification deadlines marked missed, by regime and obligation",
    ["regime", "obligation"],
)
BREACH_ESCALATIONS = Counter(
    "smt_breach_escalations_total", "Escalation alerts raised, by kind", ["kind"]
)


@dataclass(frozen=True, kw_only=True)
class Alert:
    kind: str  # "due_soon" | "missed"
    breach_id: str
    regime: str
    obligation: str
    due_at: str  # ISO, in the authority's zone
    hours_left: float
    statutory: bool


def check_deadlines(
    session: Session, *, window_hours: float, actor: str = "smt", now: datetime | None = None
) -> list[Alert]:
    now = now or datetime.now(UTC)
    alerts: list[Alert] = []
    soon: dict[tuple[str, str], int] = {}
    for d in open_deadlines(session):
        state = classify(d.due_at, now=now, window_hours=window_hours)
        if state not in (DeadlineState.DUE_SOON, DeadlineState.MISSED) or d.due_at is None:
            continue
        alert = Alert(
            kind=state.value,
            breach_id=d.breach_id,
            regime=d.regime,
            obligation=d.obligation,
            due_at=d.due_at.astimezone(ZoneInfo(d.tz)).isoformat(),
            hours_left=round((d.due_at - now).total_seconds() / 3600, 2),
            statutory=d.statutory,
        )
        alerts.append(alert)
        BREACH_ESCALATIONS.labels(kind=state.value).inc()
        if state is DeadlineState.MISSED:
            mark_deadline(session, d, "missed", actor=actor, now=now)
            BREACH_MISSED.labels(regime=d.regime, obligation=d.obligation).inc()
        else:
            d.alerted_at = now
            key = (d.regime, d.obligation)
            soon[key] = soon.get(key, 0) + 1
    BREACH_DUE_SOON.clear()
    for (regime, obligation), n in soon.items():
        BREACH_DUE_SOON.labels(regime=regime, obligation=obligation).set(n)
    return alerts


def alerts_markdown(alerts: list[Alert], *, window_hours: float) -> str:
    if not alerts:
        return f"No breach deadline is missed or due within {window_hours:g} hours."
    rows = [
        "| kind | breach | regime | obligation | due (authority's zone) | hours left |",
        "|---|---|---|---|---|---|",
    ]
    rows += [
        f"| {a.kind} | {a.breach_id} | {a.regime} | {a.obligation} | {a.due_at} |"
        f" {a.hours_left:g} |"
        for a in alerts
    ]
    return "\n".join(rows)


def alert_dicts(alerts: list[Alert]) -> list[dict[str, object]]:
    return [asdict(a) for a in alerts]
