"""Tests for deploy/k8s: every manifest passes kubernetes-validate (offline schemas, strict), the
kustomization lists them all, probes, resources and secret references are in place, and the
rendered ConfigMaps match the rule pack and routing file they come from."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "deploy" / "k8s"
K8S_VERSION = kubernetes_validate.latest_version()


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture
def manifests() -> dict[str, list[dict[str, Any]]]:
    """Every resource file named by kustomization.yaml, parsed."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return {name: _documents(K8S / name) for name in kustomization["resources"]}


@pytest.fixture
def deployment(manifests: dict[str, list[dict[str, Any]]]) -> Callable[[str], dict[str, Any]]:
    """Factory: the Deployment with the given name."""

    def find(name: str) -> dict[str, Any]:
        for docs in manifests.values():
            for doc in docs:
                if doc["kind"] == "Deployment" and doc["metadata"]["name"] == name:
                    return doc
        raise AssertionError(f"no Deployment {name}")

    return find


def test_every_manifest_validates_strictly(manifests: dict[str, list[dict[str, Any]]]) -> None:
    """Each resource validates against the Kubernetes schema, rejecting unknown fields."""
    kinds = set()
    for docs in manifests.values():
        for doc in docs:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            kinds.add(doc["kind"])
    assert {"Deployment", "Service", "ConfigMap", "Namespace"} <= kinds


def test_the_validator_rejects_a_broken_deployment(deployment: Callable[[str], dict[str, Any]]) -> None:
    """A misspelt probe field fails validation, so a passing run means something."""
    broken = copy.deepcopy(deployment("preempt-worker"))
    probe = broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["httpGett"] = probe.pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    """No YAML file in deploy/k8s is left out of kustomization.yaml, and every listed file exists."""
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


@pytest.mark.parametrize(("name", "port"), [("preempt-worker", 6066), ("preempt-notifier", 6067)])
def test_deployments_probe_health_and_readiness(
    deployment: Callable[[str], dict[str, Any]], name: str, port: int
) -> None:
    """Liveness hits /healthz and readiness /readyz on the app's web port; resources are requested."""
    spec = deployment(name)["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"][0]["containerPort"] == port
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert spec["securityContext"]["runAsNonRoot"] is True


def test_slack_buttons_reach_notifiers_that_are_not_ready(manifests: dict[str, list[dict[str, Any]]]) -> None:
    """/readyz 503 reports deliveries in trouble; the Service carrying POST /slack/actions must not drop those
    pods, or every button click fails while every notifier reports, say, SMTP down."""
    (service,) = manifests["notifier-service.yaml"]
    assert service["kind"] == "Service"
    assert service["spec"]["publishNotReadyAddresses"] is True


def test_notifier_secrets_are_references_only(
    manifests: dict[str, list[dict[str, Any]]], deployment: Callable[[str], dict[str, Any]]
) -> None:
    """Slack and SMTP secrets come from secretKeyRef; no Secret with values ships in the manifests."""
    env = deployment("preempt-notifier")["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in env if "valueFrom" in e}
    assert {"PREEMPT_SLACK_BOT_TOKEN", "PREEMPT_SLACK_SIGNING_SECRET", "PREEMPT_SMTP_PASSWORD"} <= set(refs)
    assert set(refs.values()) == {"preempt-secrets"}
    assert all(doc["kind"] != "Secret" for docs in manifests.values() for doc in docs)


def test_rules_and_routes_configmaps_are_mounted_where_settings_point(
    manifests: dict[str, list[dict[str, Any]]], deployment: Callable[[str], dict[str, Any]]
) -> None:
    """The rules and routes ConfigMaps are mounted at the paths PREEMPT_RULES_PATH/ROUTES_PATH name."""
    settings = manifests["configmap-settings.yaml"][0]["data"]
    mounts = {
        name: {
            m["mountPath"]: m["name"]
            for m in deployment(name)["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        }
        for name in ("preempt-worker", "preempt-notifier")
    }
    assert mounts["preempt-worker"][settings["PREEMPT_RULES_PATH"]] == "rules"
    assert mounts["preempt-notifier"][str(Path(settings["PREEMPT_ROUTES_PATH"]).parent)] == "routes"


def test_rendered_configmaps_match_their_sources() -> None:
    """configmap-rules.yaml and configmap-routes.yaml equal a fresh render of the pack and routes file."""
    result = subprocess.run(
        [sys.executable, str(K8S / "render_configmaps.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    rules = _documents(K8S / "configmap-rules.yaml")[0]["data"]
    pack = {p.name for p in (REPO / "rules" / "packs" / "default").glob("*.y*ml")}
    assert set(rules) == pack


def test_every_web_port_is_behind_a_network_policy(
    manifests: dict[str, list[dict[str, Any]]], deployment: Callable[[str], dict[str, Any]]
) -> None:
    """Ingress is denied by default and each app's web port is opened to named namespaces only, never to all."""
    policies = [doc for docs in manifests.values() for doc in docs if doc["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]]
    assert deny, "no default-deny ingress policy"
    for name in ("preempt-worker", "preempt-notifier", "preempt-ingest"):
        port = deployment(name)["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        mine = [
            p for p in policies if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == name
        ]
        assert mine, f"no NetworkPolicy selects {name}"
        for rule in mine[0]["spec"]["ingress"]:
            assert [p["port"] for p in rule["ports"]] == [port]
            assert rule["from"], "an empty 'from' would admit every source"
            assert all("namespaceSelector" in peer for peer in rule["from"])


def test_kafka_credentials_are_optional_secret_references(deployment: Callable[[str], dict[str, Any]]) -> None:
    """Every Kafka client pod takes the SASL username and password from the Secret, optionally."""
    for name in ("preempt-worker", "preempt-notifier", "preempt-ingest"):
        env = deployment(name)["spec"]["template"]["spec"]["containers"][0]["env"]
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
        for var in ("PREEMPT_KAFKA_SASL_USERNAME", "PREEMPT_KAFKA_SASL_PASSWORD"):
            assert refs[var]["name"] == "preempt-secrets"
            assert refs[var]["optional"] is True


KAFKA_SECRETS = {"PREEMPT_KAFKA_SASL_USERNAME", "PREEMPT_KAFKA_SASL_PASSWORD"}
SECRETS_READ = {
    "preempt-worker": KAFKA_SECRETS,
    "preempt-notifier": KAFKA_SECRETS
    | {
        "PREEMPT_SLACK_BOT_TOKEN",
        "PREEMPT_SLACK_WEBHOOK_URL",
        "PREEMPT_SLACK_SIGNING_SECRET",
        "PREEMPT_SMTP_USERNAME",
        "PREEMPT_SMTP_PASSWORD",
    },
    "preempt-ingest": KAFKA_SECRETS | {"PREEMPT_INGEST_API_KEYS", "PREEMPT_INGEST_HMAC_SECRET"},
}


@pytest.mark.parametrize("name", sorted(SECRETS_READ))
def test_each_pod_gets_only_the_secrets_its_process_reads(
    deployment: Callable[[str], dict[str, Any]], name: str
) -> None:
    """A secret goes only to the pods whose process uses it: the rules worker, which serves no ingest, was
    handed the ingest signing secret (anyone who could read its environment could sign events)."""
    env = deployment(name)["spec"]["template"]["spec"]["containers"][0]["env"]
    secrets = {e["name"] for e in env if "secretKeyRef" in e.get("valueFrom", {})}
    assert secrets <= SECRETS_READ[name]
