"""What each function process is started with: Knative's runtime contract, as its Service would get it."""

from __future__ import annotations

import os

from functions.registry import all_specs
from localplatform.processes import FunctionProcess

PLATFORM_ENV = {"K_SINK": "http://127.0.0.1:9/brokers/default", "DATAFROST_DATA_DIR": "/tmp/df"}


def test_only_functions_that_post_events_get_k_sink() -> None:
    for spec in all_specs():
        env = FunctionProcess(spec, PLATFORM_ENV).process_env()
        assert env["K_SERVICE"] == spec.name and env["DATAFROST_DATA_DIR"] == "/tmp/df"
        assert ("K_SINK" in env) == spec.uses_sink, spec.name
    assert {s.name for s in all_specs() if s.uses_sink} == {"storage-events", "dead-letters", "catalog"}


def test_each_function_process_is_told_whose_death_ends_it() -> None:
    for spec in all_specs():
        assert FunctionProcess(spec, PLATFORM_ENV).process_env()["DATAFROST_PARENT_PID"] == str(os.getpid())
