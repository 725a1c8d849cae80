"""func.yaml: valid against func's schema, and describing the image the manifests deploy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from deploy.common import IMAGE, NAMESPACE
from deploy.serving import container_resources
from functions.registry import all_specs
from functions.spec import TARGET, Resources, Scaling, relative_source
from tests.support.services import require_shared

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = "data/func/func_yaml-schema.json"  # under ../shared (tests.support.services.SHARED_DIR)


def func_yaml() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "func.yaml").read_text())
    return loaded


def test_func_yaml_validates_against_the_func_schema() -> None:
    schema = json.loads(require_shared(SCHEMA, "func's func.yaml schema").read_text())
    jsonschema.validate(func_yaml(), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**func_yaml(), "bulid": {}}, schema)  # a typo is refused


def test_func_yaml_builds_the_image_the_manifests_deploy() -> None:
    spec = func_yaml()
    assert (spec["runtime"], spec["build"]["builder"]) == ("python", "s2i")
    assert (spec["image"], spec["namespace"], spec["deploy"]["namespace"]) == (IMAGE, NAMESPACE, NAMESPACE)
    assert spec["deploy"]["options"]["resources"] == container_resources(Resources())
    assert spec["deploy"]["options"]["scale"] == {"min": Scaling().min_scale, "max": Scaling().max_scale}
    envs = {e["name"]: e["value"] for e in spec["run"]["envs"]}
    sources = {relative_source(s.name) for s in all_specs()}
    assert envs["FUNCTION_SOURCE"] in sources and (ROOT / envs["FUNCTION_SOURCE"]).is_file()
    assert envs["FUNCTION_TARGET"] == TARGET
    assert (ROOT / "function" / "func.py").is_file()  # what func's Python scaffolding imports
