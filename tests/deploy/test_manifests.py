"""Every manifest in ``deploy/`` validated offline: Kubernetes' own schemas (PyPI's ``kubernetes-validate``,
strict: unknown fields are errors) and the settings the service needs from them (probes on the right routes,
a termination grace period longer than the drain, ports that match the env, the KServe runtime the
InferenceService names). KServe's CRD schemas are not vendored: its containers are validated as core/v1
Containers against Kubernetes' schema, the rest by the checks below."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from dhat_serve.config import ServeConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
VERSION = kubernetes_validate.latest_version()


def docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


@pytest.mark.parametrize("name", ["kubernetes.yaml", "kubernetes-gpu.yaml"])
def test_kubernetes_manifests_validate_strictly_and_fit_the_service(name):
    kinds = []
    for doc in docs(name):
        kubernetes_validate.validate(doc, VERSION, strict=True)
        kinds.append(doc["kind"])
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = env_of(container)
        assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        drain = float(env.get("DHAT_DRAIN_DELAY_S", ServeConfig.drain_delay_s))
        grace = float(env.get("DHAT_GRACE_S", ServeConfig.grace_s))
        assert pod["terminationGracePeriodSeconds"] > drain + grace
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert str(ports["grpc"]) == env["DHAT_GRPC_PORT"] and container["command"][:2] == ["bentoml", "serve"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert env["DHAT_ARTIFACT"] in mounts
    assert kinds[0] == "Deployment"


def test_a_mistake_is_caught():
    bad = docs("kubernetes.yaml")[0]
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pth"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError, match="'pth' was unexpected"):
        kubernetes_validate.validate(bad, VERSION, strict=True)


def test_kserve_runtime_and_inference_service():
    runtime, isvc = docs("kserve.yaml")
    assert (runtime["apiVersion"], runtime["kind"]) == ("serving.kserve.io/v1alpha1", "ServingRuntime")
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    # the runtime's containers are core/v1 Containers: validate them as a Pod's, with Kubernetes' strict schema
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "dhat-runtime-check"},
        "spec": {"containers": runtime["spec"]["containers"]},
    }
    kubernetes_validate.validate(pod, VERSION, strict=True)
    assert runtime["spec"]["protocolVersions"] == ["v2"]
    (container,) = runtime["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert set(ports) == {"http1", "h2c"} and str(ports["h2c"]) == env_of(container)["DHAT_GRPC_PORT"]
    assert env_of(container)["DHAT_ARTIFACT"] == "/mnt/models"  # where KServe's storage initializer puts storageUri
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"] and model["protocolVersion"] == "v2"
    assert model["modelFormat"]["name"] in {f["name"] for f in runtime["spec"]["supportedModelFormats"]}


def test_the_gate_job_runs_dhat_gate_before_the_canary_and_fails_on_a_failed_gate():
    (job,) = docs("gate.yaml")
    kubernetes_validate.validate(job, VERSION, strict=True)
    assert job["kind"] == "Job" and job["spec"]["backoffLimit"] == 0  # a verdict is not retried
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    command = container["command"]
    assert command[:2] == ["dhat", "gate"] and "--card" in command
    flags = {command[i]: command[i + 1] for i in range(3, len(command) - 1) if command[i].startswith("--")}
    assert {"--run", "--against", "--against-run", "--margin", "--n", "--attacks", "--out"} <= set(flags)
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    for path in (command[2], flags["--run"], flags["--against"], flags["--against-run"], flags["--out"]):
        assert any(path.startswith(m) for m in mounts), path
    # the gate's flags are the command's own: parsed by the real CLI (a typo here would fail the Job at run time)
    from typer.testing import CliRunner

    from dhat_serve.cli import app

    result = CliRunner().invoke(app, command[1:])
    assert result.exit_code == 2 and f"--run {flags['--run']}: no such run directory" in result.output
    (canary,) = docs("kserve-canary.yaml")
    runtime, isvc = docs("kserve.yaml")
    predictor = canary["spec"]["predictor"]
    assert 0 < predictor["canaryTrafficPercent"] < 100 and canary["metadata"]["name"] == isvc["metadata"]["name"]
    assert predictor["model"]["runtime"] == runtime["metadata"]["name"]
    assert predictor["model"]["storageUri"].endswith(command[2].removeprefix("/work/"))
