"""One function served for real: in its own process (`python -m localplatform.serve`), as its Knative
Service serves it (func's Python middleware), or its target called in-process with a CloudEvent, as
the broker delivers it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import flask
import urllib3

from eventing.cloudevent import CloudEvent
from eventing.http_codec import to_binary
from functions import registry
from functions.runtime import target
from functions.spec import TARGET, FunctionSpec, relative_source
from localplatform.processes import free_port
from shared.settings import from_env


class ServedFunction:
    """A function's own process on a free loopback port, with `env` over this process's environment
    and the spec's own env (as `datafrost dev` and the Knative Service start it)."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        declared = registry.spec(name)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "localplatform.serve", name, str(self.port)],
            env={**os.environ, "DATAFROST_LOG_LEVEL": "WARNING", **(declared.env if declared else {}), **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, f"{name} exited"
            try:
                if urllib3.request("GET", self.url + "/healthz", timeout=1, retries=False).status == 200:
                    return
            except urllib3.exceptions.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{name} did not become ready"
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class FuncServed:
    """A function as its Knative Service runs it: func's scaffolding (func-python's hypercorn) serving
    `function.new()`, FUNCTION_SOURCE relative to the project, started from another directory; `env`
    over this process's environment without its DATAFROST_* settings; output in `log_path`."""

    SCAFFOLDING = "from func_python.http import serve; from function import new; serve(new)"

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        clean = {k: v for k, v in os.environ.items() if not k.startswith("DATAFROST_")}
        clean.update(
            LISTEN_ADDRESS=f"127.0.0.1:{self.port}",
            FUNCTION_SOURCE=relative_source(name),
            FUNCTION_TARGET=TARGET,
            **env,
        )
        with log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", self.SCAFFOLDING], env=clean, cwd="/", stdout=out, stderr=out
            )
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, log_path.read_text()
            try:
                ready = urllib3.request("GET", self.url + "/health/readiness", timeout=1, retries=False)
                if ready.status == 200:
                    return
            except urllib3.exceptions.HTTPError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def deliver(spec: FunctionSpec, event: CloudEvent, data_dir: Path) -> flask.Response:
    """The event POSTed to the function's own target, as the broker delivers it (auth off here)."""
    handle = target(spec, from_env({"DATAFROST_DATA_DIR": str(data_dir), "DATAFROST_AUTH": "off"}))
    headers, body = to_binary(event)
    with flask.Flask(__name__).test_request_context("/", method="POST", headers=headers, data=body):
        return handle(flask.request)
