"""The CLI finds the `datafrost dev` of its data dir without --url (issue 12 item 8).

`datafrost dev` records where it runs in `<data dir>/platform.json`; commands run from the folder it
runs in (its default data dir `.datafrost`) reach it on whatever port it has, a stale record (its
process gone) is ignored, and a trigger sink on another DataFrost gateway port of this machine is
refused with both addresses.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from localplatform import platform_file
from tests.support.platform import DATAFROST, DevProcess


def bare_env() -> dict[str, str]:
    """The environment without the variables that would name the platform for the CLI."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATAFROST_URL", "DATAFROST_DATA_DIR", "DATAFROST_TOKEN")
    }


def datafrost(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DATAFROST, *args], cwd=cwd, env=env or bare_env(), capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    folder = tmp_path_factory.mktemp("project")
    platform = DevProcess(folder / ".datafrost", env=bare_env()).start()  # a random port, never 8080
    yield platform
    platform.stop()


def test_dev_records_where_it_runs(dev: DevProcess) -> None:
    record = json.loads((dev.data_dir / "platform.json").read_text())
    assert record["url"] == dev.url
    assert record["internal_url"] == f"http://127.0.0.1:{(dev.data_dir / 'internal-port').read_text()}"
    assert dev.proc is not None and record["pid"] == dev.proc.pid


def test_commands_without_url_reach_the_platform_of_the_current_folder(dev: DevProcess) -> None:
    folder = dev.data_dir.parent
    token = datafrost(folder, "token")
    assert token.returncode == 0, token.stderr
    assert token.stdout.count(".") == 2  # a JWT
    listed = datafrost(folder, "trigger", "list")
    assert listed.returncode == 0, listed.stderr
    assert "inspect-uploads" in listed.stdout
    functions = datafrost(folder, "functions")
    assert functions.returncode == 0, functions.stderr
    assert "event-display" in functions.stdout
    status = datafrost(folder, "status")
    assert status.returncode == 0, status.stderr


def test_data_dir_flag_and_variable_find_it_from_elsewhere(dev: DevProcess, tmp_path: Path) -> None:
    by_flag = datafrost(tmp_path, "trigger", "list", "--data-dir", str(dev.data_dir))
    assert by_flag.returncode == 0, by_flag.stderr
    by_variable = datafrost(tmp_path, "token", env={**bare_env(), "DATAFROST_DATA_DIR": str(dev.data_dir)})
    assert by_variable.returncode == 0, by_variable.stderr


def test_url_still_wins(dev: DevProcess) -> None:
    result = datafrost(dev.data_dir.parent, "trigger", "list", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "cannot reach http://127.0.0.1:9/" in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_sink_on_another_datafrost_port_is_refused_naming_both(dev: DevProcess) -> None:
    other = "http://127.0.0.1:8080/event-display/"  # what a README example says under the default port
    result = datafrost(dev.data_dir.parent, "trigger", "create", "elsewhere", "--sink", other)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "server answered 400" in result.stderr
    assert "127.0.0.1:8080" in result.stderr and dev.url in result.stderr
    status, body = dev.json(
        "POST",
        "/brokers/default/triggers",
        {"name": "ingress-elsewhere", "subscriber": "http://localhost:8080/brokers/default"},
    )
    assert status == 400 and "localhost:8080" in body["error"] and dev.url in body["error"]


def test_a_sink_on_another_port_that_names_no_function_is_accepted(dev: DevProcess) -> None:
    status, body = dev.json(
        "POST", "/brokers/default/triggers", {"name": "somewhere", "subscriber": "http://127.0.0.1:8080/hook"}
    )
    assert status == 201, body
    assert dev.json("DELETE", "/brokers/default/triggers/somewhere")[0] == 204


def test_a_stale_record_is_ignored_and_a_clean_exit_removes_it(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    data_dir = folder / ".datafrost"
    data_dir.mkdir(parents=True)
    no_such_pid = 2**22 + 1  # above Linux's largest pid_max
    stale = {"url": "http://127.0.0.1:9", "internal_url": "http://127.0.0.1:9", "pid": no_such_pid}
    (data_dir / "platform.json").write_text(json.dumps(stale))
    assert platform_file.read(data_dir) is None
    result = datafrost(folder, "trigger", "list")  # the default URL, not the stale one
    assert result.returncode == 1 and "cannot reach http://127.0.0.1:8080/" in result.stderr

    dev = DevProcess(data_dir, env=bare_env()).start()  # a stale record does not stop a start
    try:
        assert platform_file.read(data_dir) is not None
        second = datafrost(folder, "dev", "--port", "0")
        assert second.returncode == 1 and "already runs on" in second.stderr and dev.url in second.stderr
    finally:
        dev.stop()
    assert not (data_dir / "platform.json").exists()
