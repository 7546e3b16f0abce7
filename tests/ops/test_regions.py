"""Residency rules and routing: failover never moves data where its residency forbids."""

from __future__ import annotations

import itertools

import pytest

from compliance.gate import GateDecision
from mpc.errors import ConfigurationError
from tasks import batch, regions, storage
from tasks.regions import RegionHealth

MARK = "ZZSECRETMARKERZZ"


def write_batch(path, rows) -> str:
    lines = ["record_id,subject_id,text,region"] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _health(**up: bool) -> dict[str, RegionHealth]:
    return {r: RegionHealth(region=r, pool_status="READY", healthy=up.get(r, True))
            for r in regions.REGIONS}


def test_shipped_rules_file_loads_and_keeps_eu_data_in_europe():
    rules = regions.load_rules()
    assert rules.allowed("europe") == ["europe"]
    assert rules == regions.default_rules()


@pytest.mark.parametrize("up", list(itertools.product([True, False], repeat=3)))
def test_every_route_is_allowed_and_the_first_healthy(up):
    rules = regions.default_rules()
    health = _health(**dict(zip(regions.REGIONS, up, strict=True)))
    table = regions.decide_routes(rules, health)
    for home in regions.REGIONS:
        healthy_allowed = [r for r in rules.allowed(home) if health[r].healthy]
        route = table.route(home)
        assert route == (healthy_allowed[0] if healthy_allowed else None)
        if route is None:
            assert table.routes[home].status == "waiting"
            with pytest.raises(regions.ResidencyUnavailable, match="wait"):
                regions.route_for(home, table, rules)
        else:
            assert rules.allows(home, route)


def test_europe_down_eu_data_waits_never_moves():
    rules = regions.default_rules()
    table = regions.decide_routes(rules, _health(europe=False))
    assert table.routes["europe"].status == "waiting"
    assert regions.assign(["europe", "americas", "apac"], "americas", table, rules) == [
        regions.WAITING, None, regions.ROUTED_ELSEWHERE]


def test_hand_edited_table_cannot_move_data():
    rules = regions.default_rules()
    table = regions.decide_routes(rules, _health())
    table.routes["europe"].route = "apac"
    with pytest.raises(regions.ResidencyUnavailable, match="forbid"):
        regions.route_for("europe", table, rules)


def test_bad_rules_file_is_a_clear_error(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("regions: {europe: {work_pool: p, timezone: UTC}}\n"
                 "residency: {europe: [europe, mars], americas: [europe], apac: [europe]}\n")
    with pytest.raises(ConfigurationError, match="mars"):
        regions.load_rules(f)
    with pytest.raises(ConfigurationError, match="does not exist"):
        regions.load_rules(tmp_path / "nope.yaml")


class _AllowAll:
    def decide(self, subjects, *, purpose, policy):
        return {s: GateDecision(subject_id=s, allowed=True) for s in subjects}


def test_gate_follows_the_routing_table(tmp_path):
    rules = regions.default_rules()
    table = regions.decide_routes(rules, _health(americas=False, europe=False))
    url = write_batch(tmp_path / "b.csv", [("r-eu", "s1", MARK, "europe"),
                                           ("r-am", "s2", MARK, "americas"),
                                           ("r-ap", "s3", MARK, "apac")])
    paths = batch.RunPaths.for_run(str(tmp_path / "out"), "run1")
    prepared = batch.prepare_batch(url, paths, max_text_chars=1000)
    gated = batch.gate_batch(prepared["valid_url"], paths, gate=_AllowAll(), policy="default",
                             region="apac", rules=rules, table=table)
    allowed = storage.read_parquet(gated["allowed_url"]).to_pandas()
    assert list(allowed["record_id"]) == ["r-ap"]
    # europe down: EU data waits; americas and europe down: Americas data waits (apac is not
    # among its allowed regions)
    assert gated["excluded_by_reason"] == {regions.WAITING: 2}


def test_party_service_endpoints_come_from_settings_or_the_region(tmp_path):
    from tasks.batch import services_spec
    from tasks.settings import InferenceSettings

    rules_file = tmp_path / "regions.yaml"
    rules_file.write_text(
        "regions:\n"
        "  americas: {work_pool: a, timezone: UTC}\n"
        "  europe: {work_pool: e, timezone: UTC, services: {model_owner: 'mo.eu:7441', dealer: 'dl.eu:7441',"
        " identity_dir: /ids/eu}}\n"
        "  apac: {work_pool: p, timezone: UTC}\n"
        "residency: {americas: [americas], europe: [europe], apac: [apac]}\n")
    rules = regions.load_rules(rules_file)
    empty = InferenceSettings(_env_file=None)
    assert services_spec(empty, rules, "europe") == {"model_owner": "mo.eu:7441", "dealer": "dl.eu:7441",
                                                     "identity_dir": "/ids/eu"}
    assert services_spec(empty, rules, "americas") is None  # the embedded default: local services
    assert services_spec(empty, rules, None) is None
    override = InferenceSettings(_env_file=None, model_owner_endpoint="mo.other:1", identity_dir="/ids/x")
    assert services_spec(override, rules, "europe") == {"model_owner": "mo.other:1", "dealer": "dl.eu:7441",
                                                        "identity_dir": "/ids/x"}
    with pytest.raises(ConfigurationError, match="half configured"):
        services_spec(InferenceSettings(_env_file=None, model_owner_endpoint="mo:1"), rules, "americas")
    bad = tmp_path / "bad.yaml"
    bad.write_text(rules_file.read_text().replace("dealer: 'dl.eu:7441',", ""))
    with pytest.raises(ConfigurationError, match="dealer"):
        regions.load_rules(bad)
