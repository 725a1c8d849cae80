"""`datafrost dev` as a user runs it: a real subprocess on a free port, with its own data dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import urllib3

from localplatform.processes import free_port

DATAFROST = [sys.executable, "-m", "cli.main"]


class DevProcess:
    """Starts `datafrost dev`, waits for /healthz, and stops it with SIGINT (or SIGKILL on demand)."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.url = f"http://{_address(args)}:{self.port}"
        self.http = urllib3.PoolManager(retries=False)
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = data_dir / f"dev-{self.port}.log"
        self._tokens: dict[str, str] = {}

    def start(self, timeout: float = 30.0) -> DevProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [*DATAFROST, "dev", "--port", str(self.port), "--data-dir", str(self.data_dir), *self.args],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=self.env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"datafrost dev exited {self.proc.returncode}: {self.log_path.read_text()}"
                )
            try:
                if self.http.request("GET", self.url + "/healthz", timeout=1).status == 200:
                    return self
            except urllib3.exceptions.HTTPError:
                time.sleep(0.05)
        raise AssertionError("datafrost dev did not answer /healthz in time")

    def token(self, user: str = "admin", roles: list[str] | None = None) -> str:
        """A token from the platform's dev issuer, as `datafrost token` gets one (cached per user)."""
        key = f"{user}:{roles}"
        if key not in self._tokens:
            body = {"user": user, **({"roles": roles} if roles is not None else {})}
            response = self.http.request(
                "POST",
                self.url + "/authz/dev/token",
                body=json.dumps(body),
                headers={"Content-Type": "application/json", **dev_token_headers(self.data_dir)},
            )
            assert response.status == 200, response.data
            self._tokens[key] = json.loads(response.data)["access_token"]
        return self._tokens[key]

    def request(
        self, method: str, path: str, *, user: str | None = "admin", **kwargs: Any
    ) -> urllib3.BaseHTTPResponse:
        """A request through the gateway, as `user` (admin by default; None sends no token)."""
        kwargs.setdefault("timeout", 30)
        headers = dict(kwargs.pop("headers", None) or {})
        if user is not None and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.token(user)}"
        return self.http.request(method, self.url + path, headers=headers, **kwargs)

    def json(
        self, method: str, path: str, body: Any = None, *, user: str | None = "admin"
    ) -> tuple[int, Any]:
        response = self.request(
            method,
            path,
            body=None if body is None else json.dumps(body),
            headers={"Content-Type": "application/json"},
            user=user,
        )
        return response.status, (json.loads(response.data) if response.data else None)

    def upload_ready(self, user: str, image: bytes, timeout: float = 30.0) -> str:
        """Upload `image` as `user` through the gateway; its id once the catalog says it is ready."""
        response = self.request("POST", "/upload", user=user, body=image, headers={"X-Filename": "a.jpg"})
        assert response.status == 201, response.data
        image_id: str = json.loads(response.data)["id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.json("GET", f"/catalog/images/{image_id}", user=user)
            if status == 200 and body["status"] == "ready":
                return image_id
            time.sleep(0.1)
        raise AssertionError(f"{user}'s image {image_id} never became ready")

    def functions(self) -> dict[str, dict[str, Any]]:
        _, body = self.json("GET", "/functions")
        return {f["name"]: f for f in body["functions"]}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run another `datafrost` command against this platform (its URL and data dir)."""
        return subprocess.run(
            [*DATAFROST, *args, "--url", self.url, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> str:
        """Stop it; returns what it printed on stdout."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=timeout)
        return out

    def logs(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines


def dev_token_headers(data_dir: Path) -> dict[str, str]:
    """What `POST /authz/dev/token` needs besides its body: the platform's dev token secret."""
    from shared.auth.dev_issuer import read_dev_token_secret

    secret = read_dev_token_secret(data_dir)
    assert secret, f"no dev token secret in {data_dir}: is the platform started?"
    return {"X-Dev-Token-Secret": secret}


def storage_events_headers(data_dir: Path) -> dict[str, str]:
    """What MinIO (or the bucket watcher) sends storage-events: the webhook token `datafrost dev` made."""
    from localplatform.auth_wiring import STORAGE_EVENTS_TOKEN_FILE

    token = (data_dir / STORAGE_EVENTS_TOKEN_FILE).read_text().strip()
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def _address(args: tuple[str, ...]) -> str:
    """Where the gateway of `datafrost dev ARGS` is reached: its --host, or loopback for a wildcard."""
    host = args[args.index("--host") + 1] if "--host" in args else "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def add_dev_users(data_dir: Path, users: dict[str, list[str]]) -> None:
    """Users (name -> roles) in the dev realm of `data_dir`, made before the platform starts; each
    password is `<name>-secret-pw`."""
    from shared.auth.dev_issuer import ensure_dev_realm

    ensure_dev_realm(data_dir)  # the realm files, so the test can add its own users
    users_file = data_dir / "auth" / "users.json"
    config = json.loads(users_file.read_text())
    for name, roles in users.items():
        config["users"].append({"username": name, "roles": roles, "password": f"{name}-secret-pw"})
    users_file.write_text(json.dumps(config))


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
