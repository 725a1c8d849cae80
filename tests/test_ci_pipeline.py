"""The CI/CD pipeline for a public CI: valid YAML by yamllint, and the jobs it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yaml"


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def run_lines(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_every_yaml_file_passes_yamllint() -> None:
    """The workflow, func.yaml, the generated manifests, the lint config itself."""
    lint = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-c", str(ROOT / ".yamllint.yaml"), "."],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_yamllint_catches_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("jobs:\n  test:\n    steps: [\n")
    lint = subprocess.run(
        [sys.executable, "-m", "yamllint", "-c", str(ROOT / ".yamllint.yaml"), str(broken)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert lint.returncode == 1 and "syntax error" in lint.stdout


def test_tests_run_against_real_services_through_ci_run() -> None:
    test = workflow()["jobs"]["test"]
    assert {"rabbitmq", "postgres"} <= set(test["services"])
    assert test["services"]["postgres"]["env"]["POSTGRES_DB"] == "test"
    assert "fetch-reference-schemas" in run_lines(test)
    assert "datafrost/.ci/run" in run_lines(test)  # which calls the README's test command
    assert ".venv/bin/datafrost manifests --check" in (ROOT / ".ci" / "run").read_text()


def test_the_image_is_built_with_func_and_deployed_only_on_tags() -> None:
    jobs = workflow()["jobs"]
    assert jobs["image"]["needs"] == "test" and "func build --builder s2i" in run_lines(jobs["image"])
    deploy = jobs["deploy"]
    assert deploy["needs"] == "image" and deploy["if"] == "startsWith(github.ref, 'refs/tags/v')"
    commands = run_lines(deploy)
    assert "kubectl apply -k ." in commands and "kourier/config-kourier.yaml" in commands
    triggers = workflow()["on"]
    assert triggers["push"]["tags"] == ["v*"]
