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


@pytest.mark.parametrize("region", regions.REGIONS)
def test_flow_jobs_mount_the_data_owner_identity(region):
    """The data owner's flow runs get its key (a Secret) where SMT_IDENTITY_DIR points."""
    template = json.loads((DEP / "work-pools" / f"kubernetes-{region}.json").read_text())
    spec = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    mount = spec["containers"][0]["volumeMounts"][0]
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "smt-data-owner-identity" and volume["secret"]["defaultMode"] == 0o400
    assert template["variables"]["properties"]["env"]["default"]["SMT_IDENTITY_DIR"] == mount["mountPath"]


SERVICE_MANIFESTS = ["model-owner", "dealer"]


def _service_docs(role):
    import yaml

    return [d for d in yaml.safe_load_all((DEP / "kubernetes" / f"{role}.yaml").read_text()) if d]


@pytest.mark.parametrize("role", SERVICE_MANIFESTS)
def test_service_manifests_pass_the_kubernetes_schema(role):
    """Every object validates against Kubernetes' strict OpenAPI schema (kubernetes-validate
    bundles it): unknown or misspelt fields, wrong types and missing required fields fail."""
    import kubernetes_validate

    docs = _service_docs(role)
    assert {d["kind"] for d in docs} == {"Secret", "Deployment", "Service"}
    for doc in docs:
        kubernetes_validate.validate(doc, "1.33", strict=True)
    broken = json.loads(json.dumps(next(d for d in docs if d["kind"] == "Deployment")))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):  # the check can fail
        kubernetes_validate.validate(broken, "1.33", strict=True)


@pytest.mark.parametrize("role", SERVICE_MANIFESTS)
def test_service_manifests_match_the_service_cli(role):
    """The Deployment runs `smt serve ROLE` with options the CLI accepts, probes the health
    endpoint on the metrics port, mounts the identity Secret where --identity-dir points, and
    gives the drain its time."""
    from mpc.service import build_parser

    docs = {d["kind"] + ("/" + d["metadata"]["name"] if d["kind"] == "Service" else ""): d
            for d in _service_docs(role)}
    dep = docs["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"][:3] == ["smt", "serve", role]
    args = build_parser().parse_args(container["args"][2:])
    assert args.role == role
    metrics_port = int(args.metrics_listen.rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == metrics_port and ports["mpc"] == int(args.listen.rsplit(":", 1)[1])
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    secret = next(v for v in pod["volumes"] if "secret" in v)
    assert mounts[secret["name"]] == str(args.identity_dir)
    assert secret["secret"]["secretName"] == docs["Secret"]["metadata"]["name"]
    assert secret["secret"]["defaultMode"] == 0o400  # mpc.identity refuses a key readable by others
    assert f"{role}.key" in docs["Secret"]["stringData"]
    assert pod["terminationGracePeriodSeconds"] > args.drain_timeout
    svc = docs[f"Service/smt-{role}"]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["mpc"]
