"""deploy/kubernetes: every manifest validates offline against the Kubernetes schemas
(kubernetes-validate, strict), and the pieces fit: probes on the routes the server has, the
Service on the pods' port, the migration Job running the CLI's real command, every Secret and
ConfigMap a pod needs either in the manifests or documented in docs/deploy.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
KUBE = ROOT / "deploy" / "kubernetes"
VERSIONS = ["1.30", "1.37"]  # the oldest release still commonly run, and the newest the validator knows


def documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                out.append((path.name, doc))
    return out


def kind(name: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents() if doc["kind"] == name]


def pod_specs() -> list[dict[str, Any]]:
    return [d["spec"]["template"]["spec"] for d in kind("Deployment") + kind("Job")]


def server() -> dict[str, Any]:
    (deployment,) = kind("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_for_kubernetes(version: str) -> None:
    docs = documents()
    assert {d["kind"] for _, d in docs} >= {"Namespace", "ServiceAccount", "ConfigMap", "Service", "Deployment", "Job",
                                            "Ingress"}
    for name, doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
        assert doc["metadata"].get("namespace", "nextstat-pro") == "nextstat-pro", name


def test_the_validator_would_catch_a_broken_manifest() -> None:
    (deployment,) = kind("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.30", strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((KUBE / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in KUBE.glob("*.yaml") if p.name != "kustomization.yaml")


def test_probes_hit_the_servers_health_routes_on_its_port() -> None:
    from nextstat_pro.server.routes.health import router

    paths = {getattr(r, "path", None) for r in router.routes}
    c = server()
    port_names = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz" in paths
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" in paths
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] in port_names
    assert f"--port {port_names['http']}" in c["args"][0] and "--host 0.0.0.0" in c["args"][0]


def test_the_service_selects_the_server_pods_and_targets_their_port() -> None:
    (deployment,) = kind("Deployment")
    services = [s for s in kind("Service") if s["spec"].get("type") != "ExternalName"]
    (service,) = services
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["name"] for p in server()["ports"]}
    (ingress,) = kind("Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def test_postgresql_and_s3_are_external_services() -> None:
    external = {s["metadata"]["name"]: s["spec"] for s in kind("Service") if s["spec"].get("type") == "ExternalName"}
    assert set(external) == {"nextstat-pro-postgres", "nextstat-pro-s3"}
    assert not kind("StatefulSet")  # no database in the cluster


def test_the_migration_job_runs_the_clis_db_upgrade(cli) -> None:  # type: ignore[no-untyped-def]
    (job,) = kind("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:3] == ["nextstat-pro", "db", "upgrade"]
    r = cli(*command[1:3], "--help")
    assert r.code == 0, r.err
    for option in (a for a in command[3:] if a.startswith("--")):
        assert option in r.out
    env = {e["name"] for e in container.get("env", [])}
    assert {a[2:-1] for a in command if a.startswith("$(")} <= env  # every $(VAR) is defined


def test_the_server_runs_the_clis_serve_command(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("serve", "--help")
    assert r.code == 0, r.err
    for option in ("--host", "--port", "--workers"):
        assert option in r.out


def test_pods_run_unprivileged_from_a_home_copied_out_of_the_secret() -> None:
    for spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
        (init,) = spec["initContainers"]
        assert "umask 077" in init["args"][0] and "config.json" in init["args"][0]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["home-secret"]["secret"]["defaultMode"] == 0o440
        assert "emptyDir" in volumes["home"]


def test_every_referenced_secret_and_configmap_exists_or_is_documented() -> None:
    configmaps = {c["metadata"]["name"] for c in kind("ConfigMap")}
    guide = (ROOT / "docs" / "deploy.md").read_text()
    secrets: set[str] = set()
    for spec in pod_specs():
        for c in spec.get("initContainers", []) + spec["containers"]:
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps
                else:
                    secrets.add(source["secretRef"]["name"])
            for e in c.get("env", []):
                secrets.add(e["valueFrom"]["secretKeyRef"]["name"])
        for v in spec["volumes"]:
            if "secret" in v:
                secrets.add(v["secret"]["secretName"])
    (ingress,) = kind("Ingress")
    secrets.update(t["secretName"] for t in ingress["spec"]["tls"])
    assert secrets == {"nextstat-pro-home", "nextstat-pro-s3", "nextstat-pro-db-admin", "nextstat-pro-tls"}
    for name in secrets:
        assert f"`{name}`" in guide, f"docs/deploy.md does not say how to create Secret {name}"
