"""The Knative manifests: valid against the real CRD schemas, consistent with the registry, stable."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cli.manifests import rendered_files
from eventing.manifests import render
from functions.registry import all_specs

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT.parent / "shared" / "data" / "knative-crds"
CRD_FILES = {
    ("serving.knative.dev/v1", "Service"): "serving/service.yaml",
    ("eventing.knative.dev/v1", "Trigger"): "eventing/trigger.yaml",
    ("eventing.knative.dev/v1", "Broker"): "eventing/broker.yaml",
    (
        "eventing.knative.dev/v1alpha1",
        "RabbitmqBrokerConfig",
    ): "eventing-rabbitmq/300-rabbitmqbrokerconfig.yaml",
}


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
    if not CRDS.is_dir():
        pytest.skip(
            f"the Knative CRD schemas are not at {CRDS} (they come with the project's shared/ folder)"
        )
    version = api_version.rsplit("/", 1)[1]
    for doc in yaml.safe_load_all((CRDS / CRD_FILES[(api_version, kind)]).read_text()):
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


@pytest.mark.parametrize(
    "resource",
    [r for r in all_resources() if r["kind"] != "Namespace"],
    ids=lambda r: f"{r['kind']}-{r['metadata']['name']}",
)
def test_every_resource_validates_against_its_crd(resource: dict[str, Any]) -> None:
    jsonschema.validate(resource, crd_schema(resource["apiVersion"], resource["kind"]))


def test_an_unknown_field_is_rejected_as_the_api_server_would() -> None:
    service = next(r for r in all_resources() if r["kind"] == "Service")
    broken = copy.deepcopy(service)
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"  # a typo
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, crd_schema("serving.knative.dev/v1", "Service"))


def test_manifests_describe_the_system_the_runner_runs() -> None:
    resources = all_resources()
    services = {r["metadata"]["name"]: r for r in resources if r["kind"] == "Service"}
    triggers = [r for r in resources if r["kind"] == "Trigger"]
    assert set(services) == {s.name for s in all_specs()}
    assert len(triggers) == sum(len(s.triggers) for s in all_specs())
    produced = {t for s in all_specs() for t in s.emits} | {
        "io.datafrost.object.created",
        "io.datafrost.object.removed",
    }
    for t in triggers:
        assert t["spec"]["subscriber"]["ref"]["name"] in services
        assert set(t["spec"]) >= {"broker", "filter", "subscriber", "delivery"} and "filters" not in t["spec"]
        assert t["spec"]["filter"]["attributes"]["type"] in produced
        sink = t["spec"]["delivery"].get("deadLetterSink")
        assert sink is None or sink["ref"]["name"] in services
    for spec in all_specs():
        annotations = services[spec.name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["autoscaling.knative.dev/min-scale"] == str(spec.scaling.min_scale)
        assert annotations["autoscaling.knative.dev/max-scale"] == str(spec.scaling.max_scale)


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
