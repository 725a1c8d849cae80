"""A function process ends when the process that started it is gone, even if that happened before it
looked (the runner names itself in DATAFROST_PARENT_PID)."""

from __future__ import annotations

import os
import subprocess
import sys

from localplatform.processes import free_port


def test_a_function_process_whose_parent_is_already_gone_exits() -> None:
    env = {**os.environ, "DATAFROST_PARENT_PID": str(os.getpid() + 1_000_000)}  # not its parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "localplatform.serve", "event-display", str(free_port())],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
