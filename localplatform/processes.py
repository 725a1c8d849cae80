"""Local scale-from-zero: one functions-framework process per function, started on first use and
stopped when idle (what Knative's activator and autoscaler do on a cluster)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import urllib3

from functions.spec import FunctionSpec
from shared import metrics
from shared.settings import from_env

log = logging.getLogger("datafrost.processes")
READY_TIMEOUT_SECONDS = 60.0


class FunctionStartError(RuntimeError):
    """A function process exited or did not become ready."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FunctionState:
    """What `datafrost dev` shows about a function."""

    name: str
    running: bool
    pid: int | None
    url: str | None
    cold_starts: int
    in_flight: int
    idle_seconds: float | None


class FunctionProcess:
    """One function's process, started on demand."""

    def __init__(self, spec: FunctionSpec, env: Mapping[str, str]) -> None:
        self.spec = spec
        self._env = env
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.cold_starts = 0
        self.in_flight = 0
        self.last_used = time.monotonic()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def url(self) -> str:
        """The function's base URL, starting it first if it is not running."""
        with self._lock:
            if not self.running:
                self._start()
            return f"http://127.0.0.1:{self.port}"

    def _start(self) -> None:
        self.port = free_port()
        started = time.monotonic()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "localplatform.serve", self.spec.name, str(self.port), str(self.max_body)],
            env=self.process_env(),
            start_new_session=True,
        )
        self._wait_ready()
        self.cold_starts += 1  # the process counts itself in datafrost_function_cold_starts_total
        metrics.cold_start_duration.labels(self.spec.name).observe(time.monotonic() - started)
        log.info("started %s on port %d in %.2fs", self.spec.name, self.port, time.monotonic() - started)

    @property
    def max_body(self) -> int:
        """The largest body the function's routes take, under the settings it will read."""
        return self.spec.max_body(from_env(dict(self._env)))

    def process_env(self) -> dict[str, str]:
        """The runtime contract: K_SERVICE and PORT; K_SINK only where the spec uses it, as on Knative;
        and this process's pid, so the function process ends with it (`localplatform.serve`)."""
        env = {**self._env, **self.spec.env, "K_SERVICE": self.spec.name, "PORT": str(self.port)}
        env["DATAFROST_PARENT_PID"] = str(os.getpid())  # the process ends when this one dies
        if not self.spec.uses_sink:
            env.pop("K_SINK", None)
        return env

    def _wait_ready(self) -> None:
        assert self._proc is not None
        http = urllib3.PoolManager(retries=False)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise FunctionStartError(f"function {self.spec.name} exited with code {code} while starting")
            try:
                if http.request("GET", f"http://127.0.0.1:{self.port}/readyz", timeout=1.0).status == 200:
                    return
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise FunctionStartError(
            f"function {self.spec.name} was not ready after {READY_TIMEOUT_SECONDS:.0f}s"
        )

    @contextmanager
    def use(self) -> Iterator[str]:
        """The base URL for one request; the process is not stopped as idle while in use."""
        self.in_flight += 1
        try:
            yield self.url()
        finally:
            self.in_flight -= 1
            self.last_used = time.monotonic()

    def stop(self, timeout: float = 5.0) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with _suppress_missing():
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with _suppress_missing():
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._proc = None
        log.info("stopped %s", self.spec.name)

    def state(self) -> FunctionState:
        running = self.running
        return FunctionState(
            name=self.spec.name,
            running=running,
            pid=self._proc.pid if running and self._proc else None,
            url=f"http://127.0.0.1:{self.port}" if running else None,
            cold_starts=self.cold_starts,
            in_flight=self.in_flight,
            idle_seconds=round(time.monotonic() - self.last_used, 1) if running else None,
        )


@contextmanager
def _suppress_missing() -> Iterator[None]:
    with suppress(ProcessLookupError):
        yield


class ProcessManager:
    """All function processes, with an idle reaper (disabled by keep_warm)."""

    def __init__(
        self, specs: tuple[FunctionSpec, ...], env: Mapping[str, str], idle_seconds: float, keep_warm: bool
    ) -> None:
        self.functions = {spec.name: FunctionProcess(spec, env) for spec in specs}
        # called with a function about to be stopped as idle, while it still answers (its last metrics)
        self.before_idle_stop: Callable[[FunctionProcess], object] = lambda fn: None
        self._idle_seconds = idle_seconds
        self._keep_warm = keep_warm
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="idle-reaper", daemon=True)

    def start(self) -> None:
        if not self._keep_warm:
            self._reaper.start()

    def get(self, name: str) -> FunctionProcess | None:
        return self.functions.get(name)

    def _reap(self) -> None:
        while not self._stop.wait(min(1.0, self._idle_seconds / 2)):
            now = time.monotonic()
            for fn in self.functions.values():
                if fn.running and fn.in_flight == 0 and now - fn.last_used > self._idle_seconds:
                    # outside the lock: the function may call through the gateway meanwhile (a request
                    # for it waits on the lock), and such a use keeps it running after all
                    self._before_stop(fn)
                    with fn._lock:
                        if fn.in_flight == 0 and time.monotonic() - fn.last_used > self._idle_seconds:
                            fn.stop()

    def _before_stop(self, fn: FunctionProcess) -> None:
        try:
            self.before_idle_stop(fn)
        except Exception:  # the function is stopped all the same
            log.exception("before stopping %s", fn.spec.name)

    def shutdown(self) -> None:
        self._stop.set()
        for fn in self.functions.values():
            fn.stop()
