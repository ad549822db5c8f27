"""The container and Kubernetes files parse and keep their promises (CI has no Docker engine)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def k8s_documents() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def by_kind(kind: str) -> dict[str, Any]:
    (document,) = [doc for doc in k8s_documents() if doc["kind"] == kind]
    return document


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    text = path.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_compose_file_has_the_service_its_database_and_a_fhir_server() -> None:
    assert set(load_compose()["services"]) == {"cds", "postgres", "fhir"}


def test_every_compose_service_has_a_healthcheck() -> None:
    for name, service in load_compose()["services"].items():
        assert service["healthcheck"]["test"], name
    postgres = load_compose()["services"]["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_the_service_waits_for_a_healthy_database_and_fhir_server() -> None:
    cds = load_compose()["services"]["cds"]
    assert cds["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "fhir": {"condition": "service_healthy"},
    }
    assert cds["environment"]["CDS_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in cds["environment"]["CDS_DATABASE_URL"]
    assert cds["build"]["context"] == "."


def test_the_fhir_healthcheck_uses_a_client_its_image_actually_contains() -> None:
    fhir = load_compose()["services"]["fhir"]
    probe = fhir["healthcheck"]["test"][1]
    dockerfile = ROOT / fhir["build"]["context"] / "Dockerfile"
    copied = [args for op, args in dockerfile_instructions(dockerfile) if op == "COPY"]
    assert any(args.endswith(probe) for args in copied)


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_itself_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", "docker-compose.yml", "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_kubernetes_manifest_parses_and_the_expected_kinds_are_there() -> None:
    kinds = [doc["kind"] for doc in k8s_documents()]
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "Secret",
    } <= set(kinds)
    assert all(doc["apiVersion"] and doc["metadata"]["name"] for doc in k8s_documents())


def test_the_deployment_probes_readiness_and_liveness_on_their_paths() -> None:
    (container,) = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]


def test_the_deployment_runs_as_non_root_with_settings_from_configmap_and_secret() -> None:
    spec = by_kind("Deployment")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    (container,) = spec["containers"]
    sources = {next(iter(source)) for source in container["envFrom"]}
    assert sources == {"configMapRef", "secretRef"}
    secret = by_kind("Secret")["stringData"]
    assert {"CDS_DATABASE_URL", "CDS_PATIENT_HASH_KEY", "CDS_TRUSTED_ISSUERS"} <= set(secret)
    assert all("REPLACE-ME" in secret[key] for key in ("CDS_DATABASE_URL", "CDS_PATIENT_HASH_KEY"))


def test_the_autoscaler_and_disruption_budget_target_the_deployment() -> None:
    deployment = by_kind("Deployment")
    hpa = by_kind("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = by_kind("PodDisruptionBudget")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert by_kind("Service")["spec"]["selector"].items() <= labels.items()


def test_the_dockerfile_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    instructions = dockerfile_instructions(ROOT / "Dockerfile")
    stages = [args for op, args in instructions if op == "FROM"]
    assert len(stages) >= 2
    assert all(stage.startswith("python:3.11-slim") for stage in stages)
    final = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]
    users = [args for op, args in final if op == "USER"]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    healthcheck = " ".join(args for op, args in final if op == "HEALTHCHECK")
    assert "healthcheck.py" in healthcheck
    assert "/healthz" in (ROOT / "deploy" / "healthcheck.py").read_text()
    assert ("ENTRYPOINT", '["cds"]') in final
    assert ("CMD", '["serve"]') in final
    assert any(op == "ENV" and "CDS_HOST=0.0.0.0" in args for op, args in final)


def test_the_docker_build_context_keeps_what_the_image_copies() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for needed in ("cds", "rules", "cards", "pyproject.toml", "README.md", "deploy/healthcheck.py"):
        assert needed not in ignored
