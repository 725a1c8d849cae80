"""What the sub-commands share: the platform URL and a small JSON HTTP client with one-line errors."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import urllib3

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_DATA_DIR = ".datafrost"  # `datafrost dev --data-dir`'s default
DEV_TOKEN_PATH = "/authz/dev/token"
DEV_SECRET_HEADER = "X-Dev-Token-Secret"


class CliError(Exception):
    """Printed as one line; the command exits 1."""


def add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("DATAFROST_URL") or None,  # None: found after parsing (`platform_url`)
        help="the running platform (default: $DATAFROST_URL, else the `datafrost dev` running on "
        f"--data-dir, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("DATAFROST_TOKEN"),
        help="bearer token (default: $DATAFROST_TOKEN, else one from the dev issuer of `datafrost dev`)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("DATAFROST_DATA_DIR") or DEFAULT_DATA_DIR),
        help="the data dir of the running `datafrost dev`, whose dev token secret gets a token from its "
        "dev issuer (default: $DATAFROST_DATA_DIR, else %(default)s)",
    )


def platform_url(data_dir: Path) -> str:
    """Where the `datafrost dev` using `data_dir` runs (its `platform.json`), else DEFAULT_URL."""
    from localplatform.platform_file import read

    found = read(data_dir)
    return found.url if found is not None else DEFAULT_URL


def resolve_url(args: argparse.Namespace) -> None:
    """Fill in `args.url` for a command that talks to a platform and was given neither --url nor
    $DATAFROST_URL: the platform running on its --data-dir (so `datafrost dev --port 18080` is found)."""
    if "url" in vars(args) and not args.url:
        args.url = platform_url(args.data_dir)


def auth_headers(args: argparse.Namespace, user: str, roles: Sequence[str] | None = None) -> dict[str, str]:
    """`Authorization` for a command: --token, else a token the local dev issuer mints for `user`.

    A platform with auth off (or pointed at a real Keycloak) has no dev token endpoint: no header then.
    """
    token = args.token
    if not token:
        body: dict[str, Any] = {"user": user}
        if roles:
            body["roles"] = list(roles)
        status, answer = request_dev_token(args, body)
        if status == 404 or not isinstance(answer, dict):
            return {}
        fail_unless(status, answer, 200)
        token = answer.get("access_token")
    return {"Authorization": f"Bearer {token}"} if token else {}


def request_dev_token(args: argparse.Namespace, body: dict[str, Any]) -> tuple[int, Any]:
    """`POST /authz/dev/token` with the dev token secret read from the platform's data dir (--data-dir).

    A 403 names the data dir looked in, so a command run from another folder says what to pass.
    """
    from shared.auth.dev_issuer import dev_token_secret_path, read_dev_token_secret

    secret = read_dev_token_secret(args.data_dir)
    headers = {DEV_SECRET_HEADER: secret} if secret else {}
    status, answer = request_json("POST", args.url.rstrip("/") + DEV_TOKEN_PATH, body, headers=headers)
    if status == 403 and isinstance(answer, dict):
        where = dev_token_secret_path(args.data_dir)
        found = "read from" if secret else "no secret at"
        raise CliError(
            f"the dev issuer refused: {answer.get('error')} ({found} {where}; pass --data-dir with the "
            "data dir of the running `datafrost dev`)"
        )
    return status, answer


def request_json(
    method: str, url: str, body: Any = None, timeout: float = 30.0, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """Send JSON, return (status, decoded JSON or None); unreachable servers raise CliError."""
    http = urllib3.PoolManager(retries=False)
    try:
        response = http.request(
            method,
            url,
            body=None if body is None else json.dumps(body).encode(),
            headers={**({"Content-Type": "application/json"} if body is not None else {}), **(headers or {})},
            timeout=timeout,
        )
    except urllib3.exceptions.HTTPError as exc:
        raise CliError(
            f"cannot reach {url}: {exc.__class__.__name__} (is `datafrost dev` running?)"
        ) from None
    decoded = None
    if response.data:
        try:
            decoded = json.loads(response.data)
        except ValueError:
            decoded = {"error": response.data.decode(errors="replace")[:200]}
    return response.status, decoded


def fail_unless(status: int, body: Any, *expected: int) -> None:
    if status not in expected:
        message = body.get("error") if isinstance(body, dict) else None
        raise CliError(f"server answered {status}: {message or body}")


def table_lines(rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns, the first row as the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def print_table(rows: Sequence[Sequence[str]]) -> None:
    print("\n".join(table_lines(rows)))
