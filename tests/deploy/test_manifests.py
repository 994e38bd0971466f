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
