"""Regions, residency rules and the routing table.

* :class:`ResidencyRules`: for each residency (where a record's data must stay), the regions that
  may process it, in order of preference; the first is the primary.  Defaults: EU data only in
  ``europe``; Americas data in ``americas``, else ``europe``; APAC data in ``apac``, else
  ``americas``.  ``deployments/regions.yaml`` (or ``SMT_REGIONS_FILE``) overrides them.
* :class:`RoutingTable`: which region processes each residency now, decided from region health
  by :func:`decide_routes` (``flows/failover_check.py`` persists it; the inference flow reads
  it).  A residency none of whose allowed regions is healthy has no route: its records wait.

Failover never moves data where its residency forbids: a route is always one of the allowed
regions, and :func:`route_for` refuses with :class:`ResidencyUnavailable` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mpc.errors import ConfigurationError, SmtError

Region = Literal["americas", "europe", "apac"]
REGIONS: tuple[str, ...] = ("americas", "europe", "apac")
DEFAULT_RULES_FILE = Path(__file__).resolve().parents[1] / "deployments" / "regions.yaml"

# exclusion reasons of the inference gate
ROUTED_ELSEWHERE = "residency"  # another region processes this residency now
WAITING = "residency_unavailable"  # no allowed region is healthy: the record waits


class ResidencyUnavailable(SmtError):
    """No region allowed for a residency is available; its records must wait."""


class ServiceEndpoints(BaseModel):
    """The party services a region's data owner (its Prefect workers) connects to."""

    model_config = ConfigDict(extra="forbid")

    model_owner: str = Field(description="HOST:PORT of the model owner's `smt serve model-owner`")
    dealer: str = Field(description="HOST:PORT of the dealer's `smt serve dealer`")
    identity_dir: str | None = Field(None, description="the data owner's key and the services' pinned "
                                     "certificates for this region; default: SMT_IDENTITY_DIR")


class RegionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    work_pool: str = Field(description="Prefect work pool of the region")
    timezone: str = Field(description="IANA time zone (schedules)")
    storage_url: str | None = Field(None, description="probe target (local path or s3://)")
    services: ServiceEndpoints | None = Field(None, description="party services of the region; none: "
                                              "the embedded default (local services on loopback)")


class ResidencyRules(BaseModel):
    """Which regions may process data resident in each region (first: primary)."""

    model_config = ConfigDict(extra="forbid")

    regions: dict[str, RegionConfig]
    residency: dict[str, list[str]]

    @model_validator(mode="after")
    def _check(self) -> ResidencyRules:
        for name in list(self.regions) + list(self.residency):
            if name not in REGIONS:
                raise ValueError(f"unknown region {name!r}; regions are {', '.join(REGIONS)}")
        for home, allowed in self.residency.items():
            if not allowed:
                raise ValueError(f"residency {home!r} allows no region; list at least one")
            unknown = [r for r in allowed if r not in self.regions]
            if unknown:
                raise ValueError(f"residency {home!r} allows {unknown}, which are not configured "
                                 "under regions:")
        missing = [r for r in REGIONS if r not in self.residency]
        if missing:
            raise ValueError(f"no residency rule for {missing}; every region needs one")
        return self

    def allowed(self, residency: str) -> list[str]:
        return list(self.residency[residency])

    def allows(self, residency: str, region: str) -> bool:
        return region in self.residency.get(residency, [])


def default_rules() -> ResidencyRules:
    return ResidencyRules(
        regions={
            "americas": RegionConfig(work_pool="smt-americas", timezone="America/New_York"),
            "europe": RegionConfig(work_pool="smt-europe", timezone="Europe/Berlin"),
            "apac": RegionConfig(work_pool="smt-apac", timezone="Asia/Singapore"),
        },
        residency={"europe": ["europe"], "americas": ["americas", "europe"],
                   "apac": ["apac", "americas"]},
    )


def load_rules(path: str | Path | None = None) -> ResidencyRules:
    """Rules from a YAML file (``regions:`` and ``residency:``); defaults when none is given
    and ``deployments/regions.yaml`` does not exist."""
    file = Path(path) if path else DEFAULT_RULES_FILE
    if not file.exists():
        if path:
            raise ConfigurationError(f"regions file {file} does not exist; fix SMT_REGIONS_FILE")
        return default_rules()
    try:
        return ResidencyRules.model_validate(yaml.safe_load(file.read_text(encoding="utf-8")))
    except ValueError as err:
        raise ConfigurationError(f"regions file {file} is invalid: {err}") from None


class RegionHealth(BaseModel):
    """One region as the failover check saw it (no personal data)."""

    region: str
    pool_status: str | None = Field(description="READY / NOT_READY / PAUSED, None if missing")
    workers_online: int = 0
    storage_ok: bool = True
    healthy: bool
    reason: str = ""


class Route(BaseModel):
    residency: str
    primary: str
    fallbacks: list[str]
    route: str | None = Field(description="region processing it now; None: records wait")
    status: Literal["primary", "failover", "waiting"]


class RoutingTable(BaseModel):
    decided_at: datetime
    regions: dict[str, RegionHealth]
    routes: dict[str, Route]

    def route(self, residency: str) -> str | None:
        r = self.routes.get(residency)
        return r.route if r else None


def decide_routes(rules: ResidencyRules, health: Mapping[str, RegionHealth],
                  now: datetime | None = None) -> RoutingTable:
    """Route each residency to its first healthy allowed region, or to none (wait)."""
    routes: dict[str, Route] = {}
    for home in REGIONS:
        allowed = rules.allowed(home)
        up = [r for r in allowed if r in health and health[r].healthy]
        route = up[0] if up else None
        status = "waiting" if route is None else ("primary" if route == allowed[0] else "failover")
        routes[home] = Route(residency=home, primary=allowed[0], fallbacks=allowed[1:],
                             route=route, status=status)
    return RoutingTable(decided_at=now or datetime.now(UTC), regions=dict(health), routes=routes)


def all_healthy(rules: ResidencyRules) -> RoutingTable:
    """The table when nothing is known to be down: every residency at its primary."""
    health = {r: RegionHealth(region=r, pool_status=None, healthy=True) for r in rules.regions}
    return decide_routes(rules, health)


def route_for(residency: str, table: RoutingTable, rules: ResidencyRules) -> str:
    """The region that processes ``residency`` now; refuses where none is available."""
    route = table.route(residency)
    if route is None:
        raise ResidencyUnavailable(
            f"no region allowed for data resident in {residency} is available (allowed: "
            f"{', '.join(rules.allowed(residency))}); its records wait until one is healthy "
            "again (see the failover-check flow)")
    if not rules.allows(residency, route):  # a hand-edited table must not move data
        raise ResidencyUnavailable(
            f"the routing table sends {residency} data to {route}, which its residency rules "
            f"forbid (allowed: {', '.join(rules.allowed(residency))}); re-run failover-check")
    return route


def assign(residencies: Iterable[str], region: str, table: RoutingTable,
           rules: ResidencyRules) -> list[str | None]:
    """For each record's residency: None to process it in ``region``, else the exclusion
    reason (:data:`ROUTED_ELSEWHERE` or :data:`WAITING`)."""
    out: list[str | None] = []
    for home in residencies:
        try:
            target = route_for(home, table, rules)
        except ResidencyUnavailable:
            out.append(WAITING)
            continue
        out.append(None if target == region else ROUTED_ELSEWHERE)
    return out


def load_table(url: str | None, storage_options: dict | None = None) -> RoutingTable | None:
    """The persisted routing table, or None when ``url`` is None or nothing is there yet."""
    if not url:
        return None
    from tasks import storage

    if not storage.exists(url, storage_options=storage_options):
        return None
    data: Any = storage.read_json(url, storage_options=storage_options)
    return RoutingTable.model_validate(data)
