"""deploy/kubernetes/ checked offline: every manifest against the Kubernetes OpenAPI schemas
(kubernetes-validate bundles them; strict: an unknown or misspelt field fails), then what a schema
cannot see: probes on served paths, a grace period longer than the drain, a preStop hook that is our
own module, selectors that match, the HPA metric the gateway exports, settings the gateway reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.config_check import unknown_variables
from gateway.fleet import prestop
from gateway.metrics import REGISTRY

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "kubernetes"
VERSIONS = ("1.29.0", "1.33.0", "1.37.0")  # the supported window at writing, oldest to newest


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def by_kind(kind: str, name: str | None = None) -> dict[str, Any]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in documents(path.name):
            if doc.get("kind") == kind and (name is None or doc["metadata"]["name"] == name):
                return doc
    raise AssertionError(f"no {kind} {name or ''}")


MANIFESTS = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
GATEWAY = by_kind("Deployment", "voice-gateway")
POD = GATEWAY["spec"]["template"]
CONTAINER = POD["spec"]["containers"][0]
CONFIG = by_kind("ConfigMap")["data"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_matches_the_kubernetes_schema(name: str, version: str) -> None:
    for doc in documents(name):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_schema_check_catches_a_misspelt_field() -> None:
    broken = documents("pdb.yaml")[0]
    broken["spec"]["maxUnavailabel"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == [m for m in MANIFESTS if m != "secret.example.yaml"]


def test_probes_hit_served_paths_on_the_container_port() -> None:
    from gateway.app import create_app, route_paths

    paths = route_paths(create_app())
    port_names = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    assert CONTAINER["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert CONTAINER["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        get = CONTAINER[probe]["httpGet"]
        assert get["path"] in paths and get["port"] in port_names
    assert CONTAINER["args"][-2:] == ["--port", str(port_names["http"])]


def test_grace_period_outlasts_the_drain_and_prestop_waits_for_calls() -> None:
    drain_s = float(CONFIG["VG_DRAIN_TIMEOUT_S"])
    assert POD["spec"]["terminationGracePeriodSeconds"] >= drain_s + 10
    command = CONTAINER["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:3] == ["python", "-m", prestop.__name__]
    args = command[3:]
    assert float(args[args.index("--timeout") + 1]) == drain_s
    assert int(args[args.index("--port") + 1]) == CONTAINER["ports"][0]["containerPort"]
    strategy = GATEWAY["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def test_selectors_match_the_pods() -> None:
    labels = POD["metadata"]["labels"]
    assert GATEWAY["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert by_kind("Service", "voice-gateway")["spec"]["selector"].items() <= labels.items()
    assert by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    redis = by_kind("Deployment", "voice-gateway-redis")
    assert by_kind("Service", "voice-gateway-redis")["spec"]["selector"].items() <= \
        redis["spec"]["template"]["metadata"]["labels"].items()


def test_hpa_scales_the_deployment_on_active_calls() -> None:
    hpa = by_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "voice-gateway"}
    (metric,) = hpa["spec"]["metrics"]
    name = metric["pods"]["metric"]["name"]
    assert name == "voice_gateway_sessions_active"
    assert any(m.name == name for m in REGISTRY.collect()), "the gateway does not export the HPA metric"
    assert hpa["spec"]["minReplicas"] >= 2


def test_scrape_annotations_point_at_metrics() -> None:
    notes = POD["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true" and notes["prometheus.io/path"] == "/metrics"
    assert int(notes["prometheus.io/port"]) == CONTAINER["ports"][0]["containerPort"]


def test_settings_are_known_and_secrets_come_from_the_secret() -> None:
    env = {e["name"]: e for e in CONTAINER["env"]}
    assert unknown_variables({**CONFIG, **env}) == []
    secret_keys = set(by_kind("Secret")["stringData"])
    for name in ("VG_ADMIN_TOKEN", "VG_CLIENT_TOKENS", "VG_REDIS_URL", "GEMINI_API_KEY", "OPENAI_API_KEY",
                 "DEEPGRAM_API_KEY"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "voice-gateway-secrets" and ref["key"] in secret_keys
    assert not any(word in key for key in CONFIG for word in ("KEY", "TOKEN", "SECRET", "PASSWORD"))
    # replicas reach each other by pod IP; the id is the pod name (unique, and in the fleet view)
    assert env["VG_REPLICA_URL"]["value"] == "http://$(POD_IP):8080"
    assert env["VG_REPLICA_ID"]["value"] == "$(POD_NAME)"
    assert list(env).index("POD_IP") < list(env).index("VG_REPLICA_URL")  # $(VAR) needs it defined first
    redis_service = by_kind("Service", "voice-gateway-redis")
    assert by_kind("Secret")["stringData"]["VG_REDIS_URL"] == \
        f"redis://{redis_service['metadata']['name']}:{redis_service['spec']['ports'][0]['port']}/0"
