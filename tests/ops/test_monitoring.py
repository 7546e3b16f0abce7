"""Alert rules and the Grafana dashboard refer only to metrics the code emits; promtool checks
and unit-tests the rules (Debian package `prometheus`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

MON = Path(__file__).resolve().parents[2] / "deployments" / "monitoring"
NAME = re.compile(r"\bsmt_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("_sum", "_count", "_created")}


def emitted() -> set[str]:
    """Every series name the code's metrics can produce."""
    import compliance.breach_escalation  # noqa: F401 - registers in the default registry
    import compliance.metrics  # noqa: F401
    from mpc.service import Metrics
    from tasks import failover, metrics

    names: set[str] = set()
    for registry in (REGISTRY, metrics.REGISTRY, failover.REGISTRY, Metrics("model-owner").registry):
        for family in registry.collect():
            for suffix in SUFFIXES.get(family.type, ("",)):
                names.add(family.name + suffix)
    return {n for n in names if n.startswith("smt_")}


def used() -> dict[str, set[str]]:
    rules = yaml.safe_load((MON / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dash = json.loads((MON / "grafana-dashboard.json").read_text())
    targets = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    return {"alerts.yml": {n for e in exprs for n in NAME.findall(e)},
            "grafana-dashboard.json": {n for e in targets for n in NAME.findall(e)}}


def test_every_metric_used_is_emitted():
    known = emitted()
    assert {"smt_region_up", "smt_inference_runs_total", "smt_mpc_session_seconds_bucket",
            "smt_dsr_overdue_requests", "smt_breach_deadlines_due_soon"} <= known
    for where, names in used().items():
        assert names, f"{where} uses no smt_ metric: the check would prove nothing"
        assert names <= known, f"{where} uses metrics nothing emits: {sorted(names - known)}"


def test_the_check_catches_a_made_up_metric():
    assert "smt_region_upp" not in emitted()


def test_no_personal_data_labels():
    from mpc.service import Metrics
    from tasks import failover, metrics

    labels = set()
    for registry in (metrics.REGISTRY, failover.REGISTRY, Metrics("dealer").registry):
        for collector in list(registry._collector_to_names):  # noqa: SLF001
            labels |= set(getattr(collector, "_labelnames", ()))
    assert labels <= {"outcome", "status", "region", "residency", "route_status", "reason", "role"}


PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install -y prometheus)")


@needs_promtool
def test_promtool_check_rules():
    done = subprocess.run([PROMTOOL, "check", "rules", "alerts.yml"], cwd=MON,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_unit_tests_the_main_alerts():
    done = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=MON,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
