"""The generated manifests validate as the API server would: CRD schemas for Knative, the Kubernetes
API's own schemas for core resources; rendering is stable and `--check` catches drift."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from cli.manifests import rendered_files
from deploy import render
from functions.registry import all_specs
from tests.support.services import require_shared

ROOT = Path(__file__).resolve().parents[2]
CRDS = "data/knative-crds"  # under ../shared (tests.support.services.SHARED_DIR)
CRD_FILES = {
    ("serving.knative.dev/v1", "Service"): "serving/service.yaml",
    ("eventing.knative.dev/v1", "Trigger"): "eventing/trigger.yaml",
    ("eventing.knative.dev/v1", "Broker"): "eventing/broker.yaml",
    (
        "eventing.knative.dev/v1alpha1",
        "RabbitmqBrokerConfig",
    ): "eventing-rabbitmq/300-rabbitmqbrokerconfig.yaml",
    ("sources.knative.dev/v1", "SinkBinding"): "eventing/sinkbindings.yaml",
    ("sources.knative.dev/v1", "PingSource"): "eventing/pingsource.yaml",
    ("sources.knative.dev/v1alpha1", "RabbitmqSource"): "eventing-rabbitmq/300-rabbitmqsource.yaml",
}
KUBERNETES = "1.33"  # the Kubernetes API version core resources are validated against
# The RabbitMQ topology operator's CRDs are not in ../shared: its resources are checked for consistency
# (tests/deploy/test_consistency.py), not against a schema.
TOPOLOGY = "rabbitmq.com/v1beta1"


def _strict(schema: Any) -> Any:
    """Unknown fields rejected, as the API server prunes or refuses them, unless the schema keeps them."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        keeps_unknown = schema.get("x-kubernetes-preserve-unknown-fields")
        if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = bool(keeps_unknown)
    elif isinstance(schema, list):
        schema = [_strict(v) for v in schema]
    return schema


def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    crds = require_shared(CRDS, "the Knative CRD schemas")
    version = api_version.rsplit("/", 1)[1]
    for doc in yaml.safe_load_all((crds / CRD_FILES[(api_version, kind)]).read_text()):
        if doc and doc.get("kind") == "CustomResourceDefinition":
            for v in doc["spec"]["versions"]:
                if v["name"] == version:
                    root = copy.deepcopy(v["schema"]["openAPIV3Schema"])
                    # every object has these; the API server allows them whatever the CRD lists
                    root.setdefault("properties", {}).update(
                        {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                        }
                    )
                    return _strict(root)
    raise AssertionError(f"no schema for {api_version} {kind}")


def all_resources() -> list[dict[str, Any]]:
    return [r for resources in render(all_specs()).values() for r in resources]


def _id(resource: dict[str, Any]) -> str:
    return f"{resource['kind']}-{resource['metadata']['name']}"


@pytest.mark.parametrize(
    "resource", [r for r in all_resources() if (r["apiVersion"], r["kind"]) in CRD_FILES], ids=_id
)
def test_every_knative_resource_validates_against_its_crd(resource: dict[str, Any]) -> None:
    jsonschema.validate(resource, crd_schema(resource["apiVersion"], resource["kind"]))


@pytest.mark.parametrize("resource", [r for r in all_resources() if r["apiVersion"] == "v1"], ids=_id)
def test_every_core_resource_validates_against_the_kubernetes_api(resource: dict[str, Any]) -> None:
    kubernetes_validate.validate(resource, KUBERNETES, strict=True)


@pytest.mark.parametrize(
    "resource", [r for r in all_resources() if r["kind"] == "Service" and "template" in r["spec"]], ids=_id
)
def test_every_function_container_is_a_valid_pod_spec(resource: dict[str, Any]) -> None:
    """The CRD keeps the pod spec open; Kubernetes' Pod schema checks the containers, probes, env."""
    pod_spec = {
        k: v
        for k, v in resource["spec"]["template"]["spec"].items()
        if k not in ("containerConcurrency", "timeoutSeconds")  # Knative's own fields
    }
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"}, "spec": pod_spec}
    kubernetes_validate.validate(pod, KUBERNETES, strict=True)


def test_every_resource_is_checked_somewhere() -> None:
    for r in all_resources():
        key = (r["apiVersion"], r["kind"])
        assert key in CRD_FILES or r["apiVersion"] in ("v1", TOPOLOGY), key


def test_an_unknown_field_is_rejected_as_the_api_server_would() -> None:
    service = next(r for r in all_resources() if r["kind"] == "Service")
    broken = copy.deepcopy(service)
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"  # a typo
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, crd_schema("serving.knative.dev/v1", "Service"))
    config = next(r for r in all_resources() if r["kind"] == "ConfigMap")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**config, "date": {}}, KUBERNETES, strict=True)  # a typo of "data"


def test_rendering_is_byte_identical_and_the_committed_files_are_current() -> None:
    assert rendered_files() == rendered_files()
    check = subprocess.run(
        [sys.executable, "-m", "cli.main", "manifests", "--check", "--out", str(ROOT / "knative")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr


def test_check_fails_on_stale_files(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "cli.main", "manifests", "--out", str(tmp_path)]
    assert subprocess.run(run, capture_output=True, cwd=ROOT).returncode == 0
    stale = tmp_path / "triggers.yaml"
    stale.write_text(stale.read_text().replace("retry: 5", "retry: 4", 1))
    result = subprocess.run([*run, "--check"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1 and "stale (triggers.yaml)" in result.stderr
    (tmp_path / "kourier" / "config-kourier.yaml").unlink()
    result = subprocess.run([*run, "--check"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1 and "kourier/config-kourier.yaml" in result.stderr


# The registry changed (catalog may scale one further) but knative/ was not regenerated.
WITH_A_REGISTRY_CHANGE = """
import dataclasses, sys
import cli.manifests
from cli.main import main
from functions.registry import all_specs
from functions.spec import Scaling

def changed():
    return tuple(
        dataclasses.replace(s, scaling=dataclasses.replace(s.scaling, max_scale=s.scaling.max_scale + 1))
        if s.name == "catalog" else s
        for s in all_specs()
    )

cli.manifests.all_specs = changed
sys.exit(main(["manifests", *sys.argv[1:]]))
"""


def test_check_fails_after_a_registry_change_until_regenerated(tmp_path: Path) -> None:
    changed = [sys.executable, "-c", WITH_A_REGISTRY_CHANGE]
    committed = subprocess.run(
        [*changed, "--check", "--out", str(ROOT / "knative")], capture_output=True, text=True, cwd=ROOT
    )
    assert committed.returncode == 1 and "stale (services.yaml, kn.sh)" in committed.stderr
    regenerated = tmp_path / "knative"
    assert (
        subprocess.run([*changed, "--out", str(regenerated)], capture_output=True, cwd=ROOT).returncode == 0
    )
    again = subprocess.run(
        [*changed, "--check", "--out", str(regenerated)], capture_output=True, text=True, cwd=ROOT
    )
    assert again.returncode == 0, again.stderr
