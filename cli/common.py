"""What the sub-commands share: the platform URL and a small JSON HTTP client with one-line errors."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import Any

import urllib3

DEFAULT_URL = "http://127.0.0.1:8080"


class CliError(Exception):
    """Printed as one line; the command exits 1."""


def add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("DATAFROST_URL", DEFAULT_URL),
        help="the running platform (default: $DATAFROST_URL, else %(default)s)",
    )


def request_json(method: str, url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    """Send JSON, return (status, decoded JSON or None); unreachable servers raise CliError."""
    http = urllib3.PoolManager(retries=False)
    try:
        response = http.request(
            method,
            url,
            body=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"} if body is not None else {},
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


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns, the first row as the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
