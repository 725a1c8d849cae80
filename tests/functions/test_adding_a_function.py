"""Adding a function is one folder and one registry line: a throwaway spec with a route and a trigger,
registered the way a new folder would be, is picked up by the local runner, the gateway policy, the
manifests and the CLI, with nothing else edited."""

from __future__ import annotations

import argparse
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import flask
import pytest

from cli import functions_cmd
from deploy import render
from eventing.cloudevent import CloudEvent
from functions import registry
from functions.context import Call, Context
from functions.runtime import json_response, target
from functions.spec import UPLOADS_BUCKET, FunctionSpec, TriggerSpec, function_module, route
from localplatform.processes import ProcessManager
from localplatform.runner import function_triggers
from pipeline import events
from shared.auth.identity import VIEWER
from shared.settings import from_env

NAME = "throwaway-counter"


def on_event(event: CloudEvent, context: Context) -> None:
    return None


def count(call: Call) -> flask.Response:
    return json_response({"count": 0, "thing": call.params["thing"]})


SPEC = FunctionSpec(
    name=NAME,
    description="Counts created objects (a test's throwaway)",
    consumes=(events.OBJECT_CREATED,),
    triggers=(
        TriggerSpec("created", {"type": events.OBJECT_CREATED, events.BUCKET_EXTENSION: UPLOADS_BUCKET}),
    ),
    on_event=on_event,
    routes=(route("GET", "/counts/<thing>", VIEWER, count),),
    database=True,
)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[FunctionSpec]:
    """The registry line (`FUNCTIONS`) plus the module its folder would hold, importable by name."""
    module = types.ModuleType(function_module(NAME))
    module.SPEC = SPEC  # type: ignore[attr-defined]
    module.handle = target(SPEC)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, function_module(NAME), module)
    monkeypatch.setattr(registry, "FUNCTIONS", (*registry.FUNCTIONS, NAME))
    registry.all_specs.cache_clear()
    registry.gateway_policy.cache_clear()
    yield SPEC
    registry.all_specs.cache_clear()
    registry.gateway_policy.cache_clear()


def test_the_runner_subscribes_it_and_can_start_it(registered: FunctionSpec, tmp_path: Path) -> None:
    config = from_env({"DATAFROST_UPLOADS_BUCKET": "photos"})
    triggers = {t.name: t for t in function_triggers(registry.all_specs(), "http://127.0.0.1:9", config)}
    created = triggers[f"{NAME}-created"]
    assert created.subscriber == f"http://127.0.0.1:9/{NAME}/"
    assert dict(created.filter) == {"type": events.OBJECT_CREATED, "bucket": "photos"}
    assert created.delivery.dead_letter_sink == "http://127.0.0.1:9/dead-letters/"
    processes = ProcessManager(registry.all_specs(), {}, idle_seconds=60, keep_warm=True)
    assert NAME in processes.functions


def test_the_gateway_policy_knows_its_routes(registered: FunctionSpec) -> None:
    policy = registry.gateway_policy()
    assert policy.lookup("GET", f"/{NAME}/counts/apples").role == VIEWER
    assert policy.lookup("POST", f"/{NAME}/").role == "service"  # its event endpoint
    assert policy.lookup("GET", f"/{NAME}/healthz").role == "public"


def test_the_manifests_deploy_it(registered: FunctionSpec) -> None:
    files = render(registry.all_specs())
    (service,) = [s for s in files["services.yaml"] if s["metadata"]["name"] == NAME]
    env = {
        e["name"]: e.get("value") or e["valueFrom"]
        for e in service["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["FUNCTION_SOURCE"] == "functions/throwaway_counter/main.py"
    database = "DATAFROST_THROWAWAY_COUNTER_DB"  # its own database: a required key of the Secret
    assert env[database] == {"secretKeyRef": {"name": "datafrost-secrets", "key": database}}
    (trigger,) = [t for t in files["triggers.yaml"] if t["metadata"]["name"] == f"{NAME}-created"]
    assert trigger["spec"]["filter"]["attributes"] == {"bucket": "uploads", "type": events.OBJECT_CREATED}
    assert trigger["spec"]["subscriber"]["ref"]["name"] == NAME


def test_the_cli_lists_it(registered: FunctionSpec, capsys: pytest.CaptureFixture[str]) -> None:
    assert functions_cmd.run(argparse.Namespace()) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith(NAME)]
    assert listed and f"{NAME}-created" in listed[0]


def test_its_own_target_serves_the_route_with_the_role_checked(registered: FunctionSpec) -> None:
    handle = target(SPEC, from_env({"DATAFROST_AUTH": "off"}))
    with flask.Flask(__name__).test_request_context("/counts/apples"):
        assert handle(flask.request).get_json() == {"count": 0, "thing": "apples"}
    guarded = target(SPEC, from_env({}))  # auth on: no token, no answer
    with flask.Flask(__name__).test_request_context("/counts/apples"):
        assert guarded(flask.request).status_code == 401
