"""`datafrost send`: one CloudEvent to the broker ingress."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cli.common import CliError, add_url, auth_headers
from eventing.client import SendError, send_event
from eventing.cloudevent import new_event


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("send", help="send one CloudEvent to the broker")
    parser.add_argument("--type", required=True, help="event type, e.g. io.datafrost.object.created")
    parser.add_argument("--source", required=True, help="event source (a URI reference)")
    parser.add_argument("--subject")
    parser.add_argument("--id", help="event id (default: a new UUID)")
    parser.add_argument("--data", help="JSON data, or @file to read it from a file")
    parser.add_argument("--extension", action="append", default=[], metavar="NAME=VALUE")
    add_url(parser)
    parser.set_defaults(run=run)


def _data(raw: str | None) -> object:
    if raw is None:
        return None
    if raw.startswith("@"):
        path = Path(raw[1:])
        if not path.is_file():
            raise CliError(f"--data {raw}: no such file")
        raw = path.read_text()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CliError(f"--data is not valid JSON: {exc}") from None


def _extensions(pairs: list[str]) -> dict[str, str]:
    extensions = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--extension {pair!r} must be NAME=VALUE")
        extensions[name] = value
    return extensions


def run(args: argparse.Namespace) -> int:
    event = new_event(
        args.type,
        args.source,
        _data(args.data),
        id=args.id,
        subject=args.subject,
        extensions=_extensions(args.extension),
    )
    try:
        # The broker ingress takes events from services; locally the dev issuer's admin holds that role.
        status = send_event(
            args.url.rstrip("/") + "/brokers/default", event, headers=auth_headers(args, "admin")
        )
    except SendError as exc:
        raise CliError(str(exc)) from None
    print(f"sent {event.id} ({status})")
    return 0
