"""deploy/kubernetes: every overlay renders offline with `kubectl kustomize`, every object is
valid against the Kubernetes schemas of a pinned version (kubernetes-validate, offline), the
ServiceMonitor against a vendored schema, and the wiring an operator relies on holds: every
Secret and ConfigMap reference resolves, probes, replicas, budgets, policies, hardening."""

from __future__ import annotations

import base64
import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from state.sentinel import is_sentinel_url, parse_sentinel_url

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes these manifests promise to work on (kubernetes-validate ships its schemas).
KUBERNETES_VERSION = "1.30.0"
OVERLAYS = ("single-replica", "ha", "ha-socket-mode", "external-redis")
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): Path(__file__).parent
    / "schemas"
    / "servicemonitor.monitoring.coreos.com-v1.json"
}
Obj = dict[str, Any]


@functools.cache
def render(overlay: str) -> tuple[Obj, ...]:
    """The overlay's objects, as `kubectl kustomize` renders them (offline)."""
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl (with Kustomize v5) is part of this machine's image"
    out = subprocess.run(
        [kubectl, "kustomize", str(KUSTOMIZE / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def find(objs: tuple[Obj, ...], kind: str, name: str | None = None) -> list[Obj]:
    return [
        o
        for o in objs
        if o["kind"] == kind and (name is None or o["metadata"]["name"].startswith(name))
    ]


def one(objs: tuple[Obj, ...], kind: str, name: str) -> Obj:
    found = find(objs, kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def container(workload: Obj, name: str) -> Obj:
    return next(c for c in pod_spec(workload)["containers"] if c["name"] == name)


def secret_data(objs: tuple[Obj, ...], name: str) -> dict[str, str]:
    secret = next(o for o in find(objs, "Secret") if o["metadata"]["name"] == name)
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_for_the_pinned_kubernetes(overlay: str) -> None:
    objs = render(overlay)
    assert objs
    for obj in objs:
        key = (obj["apiVersion"], obj["kind"])
        where = f"{overlay}: {obj['kind']}/{obj['metadata']['name']}"
        if key in CRD_SCHEMAS:
            schema = json.loads(CRD_SCHEMAS[key].read_text())
            jsonschema.validate(obj, schema)
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{where}: {exc.message} at {list(exc.path)}") from None


def test_the_vendored_crd_schema_refuses_what_the_operator_would() -> None:
    monitor = one(render("ha"), "ServiceMonitor", "ad1411-serve")
    schema = json.loads(CRD_SCHEMAS[("monitoring.coreos.com/v1", "ServiceMonitor")].read_text())
    bad = json.loads(json.dumps(monitor))
    bad["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        jsonschema.validate(bad, schema)


def _references(workload: Obj, *, optional: bool = True) -> list[tuple[str, str, str | None]]:
    """(kind, name, key) of every Secret and ConfigMap a pod template uses (without optional
    ones, which the operator may create outside Kustomize, when optional is False)."""
    refs: list[tuple[str, str, str | None]] = []
    spec = pod_spec(workload)
    for c in spec["containers"]:
        for env in c.get("env", []):
            source = env.get("valueFrom", {})
            if "secretKeyRef" in source:
                refs.append(
                    ("Secret", source["secretKeyRef"]["name"], source["secretKeyRef"]["key"])
                )
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                refs.append(("ConfigMap", ref["name"], ref["key"]))
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            refs.append(("Secret", volume["secret"]["secretName"], None))
        if "configMap" in volume:
            refs.append(("ConfigMap", volume["configMap"]["name"], None))
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source and (optional or not source["secret"].get("optional")):
                refs.append(("Secret", source["secret"]["name"], None))
    return refs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_and_configmap_reference_resolves(overlay: str) -> None:
    objs = render(overlay)
    for workload in find(objs, "Deployment") + find(objs, "StatefulSet"):
        for kind, name, key in _references(workload, optional=False):
            target = [o for o in find(objs, kind) if o["metadata"]["name"] == name]
            assert target, f"{workload['metadata']['name']} uses {kind} {name}: not rendered"
            if key is not None:
                assert key in target[0].get("data", {}), f"{kind} {name} has no key {key}"


EXPECTED = {
    # overlay: (serve replicas, worker replicas, redis pods, Sentinel)
    "single-replica": (1, 1, 1, False),
    "ha": (3, 2, 3, True),
    "ha-socket-mode": (3, 2, 3, True),
    "external-redis": (3, 2, 0, False),
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_replicas_redis_and_the_url_the_bot_gets(overlay: str) -> None:
    objs = render(overlay)
    serve_n, worker_n, redis_n, sentinel = EXPECTED[overlay]
    assert one(objs, "Deployment", "ad1411-serve")["spec"]["replicas"] == serve_n
    assert one(objs, "Deployment", "ad1411-worker")["spec"]["replicas"] == worker_n
    redis = find(objs, "StatefulSet", "redis")
    assert sum(s["spec"]["replicas"] for s in redis) == redis_n
    url_secret = next(o["metadata"]["name"] for o in find(objs, "Secret", "ad1411-redis"))
    url = secret_data(objs, url_secret)["REDIS_URL"]
    assert is_sentinel_url(url) == sentinel
    if sentinel:
        target = parse_sentinel_url(url)  # the bot's own parser accepts what we ship
        assert target.service == "ad1411" and len(target.sentinels) == 3
        assert [c["name"] for c in pod_spec(redis[0])["containers"]] == ["redis", "sentinel"]
    for statefulset in redis:
        args = " ".join(
            container(statefulset, "redis").get("args", [])
            + container(statefulset, "redis").get("command", [])
        )
        assert "appendonly" in args or "start-redis.sh" in args
        assert statefulset["spec"]["volumeClaimTemplates"], "Redis data must be persistent"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_budgets_and_resources(overlay: str) -> None:
    objs = render(overlay)
    serve = container(one(objs, "Deployment", "ad1411-serve"), "serve")
    assert serve["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert serve["readinessProbe"]["httpGet"]["path"] == "/readyz"
    worker = container(one(objs, "Deployment", "ad1411-worker"), "worker")
    assert worker["livenessProbe"]["exec"]["command"][:3] == ["ad1411", "worker", "--check"]
    budgets = {
        p["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component")
        for p in find(objs, "PodDisruptionBudget")
    }
    assert {"serve", "worker"} <= budgets
    for workload in find(objs, "Deployment") + find(objs, "StatefulSet"):
        for c in pod_spec(workload)["containers"]:
            assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
            assert ":" in c["image"] and not c["image"].endswith(":latest"), c["image"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_hardened(overlay: str) -> None:
    for workload in find(render(overlay), "Deployment") + find(render(overlay), "StatefulSet"):
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        for c in spec["containers"]:
            ctx = c["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"]["drop"] == ["ALL"]


def _egress_ports(policy: Obj) -> set[int]:
    return {p["port"] for rule in policy["spec"].get("egress", []) for p in rule.get("ports", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_allow_only_what_is_needed(overlay: str) -> None:
    objs = render(overlay)
    deny = one(objs, "NetworkPolicy", "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    serve = one(objs, "NetworkPolicy", "ad1411-serve")
    worker = one(objs, "NetworkPolicy", "ad1411-worker")
    assert _egress_ports(serve) >= {53, 443, 6379}
    assert _egress_ports(serve).isdisjoint({389, 636, 5985, 5986}), "serve never talks to a DC"
    assert _egress_ports(worker) >= {53, 443, 6379, 389, 636, 3268, 3269, 5985, 5986}
    if overlay == "external-redis":
        assert 6380 in _egress_ports(serve) and 6380 in _egress_ports(worker)
    # Slack's 443 is to public addresses only, never the private ranges the DCs live in.
    slack_rules = [
        r for r in serve["spec"]["egress"] if any(p["port"] == 443 for p in r.get("ports", []))
    ]
    assert all("10.0.0.0/8" in r["to"][0]["ipBlock"]["except"] for r in slack_rules)


def test_only_the_worker_holds_dc_credentials() -> None:
    objs = render("ha")
    serve_refs = {name for _, name, _ in _references(one(objs, "Deployment", "ad1411-serve"))}
    worker_refs = {name for _, name, _ in _references(one(objs, "Deployment", "ad1411-worker"))}
    assert not any(n.startswith("ad1411-dc-credentials") for n in serve_refs)
    assert any(n.startswith("ad1411-dc-credentials") for n in worker_refs)


def test_socket_mode_variant_gives_serve_the_app_token() -> None:
    objs = render("ha-socket-mode")
    env = {e["name"]: e for e in container(one(objs, "Deployment", "ad1411-serve"), "serve")["env"]}
    ref = env["SLACK_APP_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert secret_data(objs, ref["name"])[ref["key"]].startswith("xapp-")
    assert "SLACK_APP_TOKEN" not in {
        e["name"]
        for e in container(one(render("ha"), "Deployment", "ad1411-serve"), "serve")["env"]
    }


def test_service_monitor_scrapes_serve_metrics() -> None:
    objs = render("ha")
    monitor = one(objs, "ServiceMonitor", "ad1411-serve")
    service = one(objs, "Service", "ad1411-serve")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    labels = service["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())


def test_the_config_map_is_a_valid_bot_config(tmp_path: Path) -> None:
    from bot.config import load_file_config

    objs = render("single-replica")
    config = next(o for o in find(objs, "ConfigMap", "ad1411-config"))["data"]["config.toml"]
    path = tmp_path / "config.toml"
    path.write_text(config)
    cfg = load_file_config(path)
    assert cfg.forests and cfg.slack.channel
    refs = [f.winrm.password for f in cfg.forests] + [f.ldap.password for f in cfg.forests]
    # DC passwords come from the mounted Secret, by file, never inline.
    assert all(r is not None and "/run/secrets/ad1411/" in r.describe() for r in refs)
    dc_keys = set(
        secret_data(
            objs, next(o["metadata"]["name"] for o in find(objs, "Secret", "ad1411-dc-credentials"))
        )
    )
    assert dc_keys == {"ldap-password", "winrm-password"}


def test_the_validator_is_not_vacuous() -> None:
    serve = json.loads(json.dumps(one(render("ha"), "Deployment", "ad1411-serve")))
    pod_spec(serve)["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(serve, KUBERNETES_VERSION, strict=True)
