"""A command whose reader has gone (`datafrost functions | head -1`) exits quietly (issue 12 item 6).

The reader is closed before the command starts, so the first write always meets a broken pipe: no
timing decides whether the test sees the failure.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.platform import DATAFROST, DevProcess

SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for `yes | head -1`'s `yes`


def run_into_closed_pipe(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes a byte
    try:
        return subprocess.run(
            [*DATAFROST, *args], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, cwd=cwd
        )
    finally:
        os.close(write_end)


def test_functions_into_a_closed_pipe_prints_no_traceback() -> None:
    result = run_into_closed_pipe("functions")
    assert result.stderr == ""
    assert result.returncode == SIGPIPE_EXIT


def test_help_into_a_closed_pipe_prints_no_traceback() -> None:
    result = run_into_closed_pipe("--help")
    assert "Traceback" not in result.stderr and "Error" not in result.stderr
    assert result.returncode in (0, SIGPIPE_EXIT)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> object:
    platform = DevProcess(tmp_path_factory.mktemp("pipes")).start()
    yield platform
    platform.stop()


@pytest.mark.parametrize("command", [("trigger", "list"), ("token",), ("status",)])
def test_platform_commands_into_a_closed_pipe_print_no_traceback(
    dev: DevProcess, command: tuple[str, ...]
) -> None:
    result = run_into_closed_pipe(*command, "--url", dev.url, "--data-dir", str(dev.data_dir))
    assert result.stderr == ""
    assert result.returncode == SIGPIPE_EXIT


def test_an_error_still_reaches_stderr_in_one_line(tmp_path: Path) -> None:
    result = run_into_closed_pipe(
        "trigger", "list", "--url", "http://127.0.0.1:9", "--data-dir", str(tmp_path)
    )
    assert result.returncode == 1
    assert result.stderr.startswith("datafrost: error: cannot reach") and len(result.stderr.splitlines()) == 1


def test_a_data_dir_that_cannot_be_used_is_one_line(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    result = subprocess.run(
        [*DATAFROST, "dev", "--port", "0", "--data-dir", str(not_a_folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("datafrost: error: ") and len(result.stderr.splitlines()) == 1, (
        result.stderr
    )
    assert str(not_a_folder) in result.stderr
