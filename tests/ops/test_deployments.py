"""prefect.yaml covers every flow in every region's pool with valid parameters and the
required schedules; the work-pool templates are accepted by Prefect (and the Kubernetes Job
manifests by prefect-kubernetes, where installed)."""

from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path

import pytest
import yaml

from tasks import regions

DEP = Path(__file__).resolve().parents[2] / "deployments"
FLOWS = {"secure-inference", "data-subject-request", "retention-cleanup", "breach-notification",
         "breach-deadline-check", "failover-check"}


def _deployments() -> list[dict]:
    return yaml.safe_load((DEP / "prefect.yaml").read_text())["deployments"]


def _flow(entrypoint: str):
    module, name = entrypoint.split(":")
    return getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), name)


def test_every_flow_in_every_region_pool_with_valid_parameters():
    rules = regions.load_rules()
    seen = set()
    for d in _deployments():
        flow = _flow(d["entrypoint"])
        seen.add((flow.name, d["name"]))
        assert d["work_pool"]["name"] == rules.regions[d["name"]].work_pool
        params = d.get("parameters", {}).get("params")
        if params is not None:  # validated as the server would: against the flow's model
            model = flow.fn.__annotations__["params"]
            model = getattr(importlib.import_module(flow.fn.__module__), model) \
                if isinstance(model, str) else model
            model.model_validate(params)
    assert seen == {(f, r) for f in FLOWS for r in regions.REGIONS}


def test_schedules():
    rules = regions.load_rules()
    for d in _deployments():
        flow, sched = _flow(d["entrypoint"]).name, d.get("schedules", [])
        if flow == "retention-cleanup":
            assert sched == [{"cron": "0 2 * * *",
                              "timezone": rules.regions[d["name"]].timezone}]
        elif flow == "breach-deadline-check":
            assert sched == [{"cron": "0 * * * *", "timezone": "UTC"}]
        elif flow == "failover-check":
            assert sched == [{"interval": 300}]
        else:
            assert not sched


@pytest.mark.parametrize("kind", ["process", "kubernetes"])
@pytest.mark.parametrize("region", regions.REGIONS)
def test_prefect_accepts_base_job_templates(kind, region):
    from prefect.client.schemas.actions import WorkPoolCreate

    template = json.loads((DEP / "work-pools" / f"{kind}-{region}.json").read_text())
    WorkPoolCreate(name=f"smt-{region}", type=kind, base_job_template=template)


class _NoApi:
    """The templates reference no blocks or variables: any API call is a test failure."""

    def __getattr__(self, name):
        raise AssertionError(f"the template needed the Prefect API ({name})")


@pytest.mark.parametrize("region", regions.REGIONS)
def test_kubernetes_job_manifest_requests_gpus_on_region_nodes(region):
    k8s = pytest.importorskip(
        "prefect_kubernetes.worker",
        reason="prefect-kubernetes not installed (pip install prefect-kubernetes==0.8.0)")
    template = json.loads((DEP / "work-pools" / f"kubernetes-{region}.json").read_text())
    values = {k: v["default"] for k, v in template["variables"]["properties"].items()
              if "default" in v}
    config = asyncio.run(k8s.KubernetesWorkerJobConfiguration.from_template_and_values(
        template, values, client=_NoApi()))
    spec = config.job_manifest["spec"]["template"]["spec"]
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"]["topology.kubernetes.io/region"] == region
    assert config.namespace == f"smt-{region}"
    # a broken manifest is refused, so the check above can fail
    bad = json.loads(json.dumps(template))
    bad["job_configuration"]["job_manifest"]["kind"] = "Jobb"
    with pytest.raises(ValueError, match="Jobb|kind"):
        asyncio.run(k8s.KubernetesWorkerJobConfiguration.from_template_and_values(
            bad, values, client=_NoApi()))
