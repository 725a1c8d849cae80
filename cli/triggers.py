"""`datafrost trigger create|list|delete`: extra triggers to any sink, as `kn trigger` does."""

from __future__ import annotations

import argparse

from cli.common import CliError, add_url, auth_headers, fail_unless, print_table, request_json
from eventing.durations import parse_duration

KSVC = "ksvc:"
ADMIN = "admin"  # triggers are the platform's wiring: the dev issuer's admin user manages them


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("trigger", help="manage extra triggers on a running `datafrost dev`")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=type(parser))

    create = verbs.add_parser("create", help="create or update a trigger")
    create.add_argument("name")
    create.add_argument("--filter", action="append", default=[], metavar="ATTRIBUTE=VALUE")
    create.add_argument(
        "--sink",
        required=True,
        help="http(s) URL the matching events are POSTed to (no user:password@), or ksvc:FUNCTION[/PATH] "
        "for a function of this platform (kept as a reference: it follows the platform's ports)",
    )
    create.add_argument("--retry", type=int, default=5, help="retries after the first attempt (0 to 100)")
    create.add_argument("--backoff-policy", choices=("exponential", "linear"), default="exponential")
    create.add_argument(
        "--backoff-delay", default="PT0.2S", help="ISO 8601 duration, at most PT1H (default %(default)s)"
    )
    create.add_argument(
        "--timeout", default="PT30S", help="per attempt, ISO 8601, at most PT10M (default %(default)s)"
    )
    create.add_argument("--dead-letter-sink", help="URL for events whose delivery failed")
    create.add_argument(
        "--parallelism", type=int, default=1, help="concurrent deliveries, 1 to 1000 (1 keeps order)"
    )
    add_url(create)
    create.set_defaults(run=run_create)

    listing = verbs.add_parser("list", help="list every trigger, the registry's included")
    add_url(listing)
    listing.set_defaults(run=run_list)

    delete = verbs.add_parser("delete", help="delete a trigger made with `trigger create`")
    delete.add_argument("name")
    add_url(delete)
    delete.set_defaults(run=run_delete)


def _parse_filters(pairs: list[str]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--filter {pair!r} must be ATTRIBUTE=VALUE")
        filters[name] = value
    return filters


def _sink(url: str, sink: str) -> str:
    """`ksvc:NAME[/PATH]` (as `kn` takes it) is the function NAME on this platform's gateway."""
    if not sink.startswith(KSVC):
        return sink
    name, slash, path = sink[len(KSVC) :].partition("/")
    if not name:
        raise CliError(f"--sink {sink!r}: name a function, ksvc:FUNCTION[/PATH]")
    return f"{url.rstrip('/')}/{name}/{path if slash else ''}"


def run_create(args: argparse.Namespace) -> int:
    for flag in ("backoff_delay", "timeout"):
        try:
            parse_duration(getattr(args, flag))
        except ValueError as exc:
            raise CliError(f"--{flag.replace('_', '-')}: {exc}") from None
    delivery = {
        "retry": args.retry,
        "backoff_policy": args.backoff_policy,
        "backoff_delay": args.backoff_delay,
        "timeout": args.timeout,
        "dead_letter_sink": _sink(args.url, args.dead_letter_sink) if args.dead_letter_sink else None,
    }
    body = {
        "name": args.name,
        "subscriber": _sink(args.url, args.sink),
        "filter": _parse_filters(args.filter),
        "delivery": delivery,
        "parallelism": args.parallelism,
    }
    url = f"{args.url.rstrip('/')}/brokers/default/triggers"
    status, answer = request_json("POST", url, body, headers=auth_headers(args, ADMIN))
    fail_unless(status, answer, 201)
    print(f"trigger {args.name} created")
    return 0


def run_list(args: argparse.Namespace) -> int:
    url = f"{args.url.rstrip('/')}/brokers/default/triggers"
    status, answer = request_json("GET", url, headers=auth_headers(args, ADMIN))
    fail_unless(status, answer, 200)
    rows = [("NAME", "FILTER", "SINK", "RETRY", "DEAD LETTER SINK")]
    for t in answer["triggers"]:
        filters = " ".join(f"{k}={v}" for k, v in sorted(t["filter"].items())) or "(all)"
        d, refs = t["delivery"], t.get("refs") or {}  # refs: sinks that are this platform's functions
        sink = refs.get("subscriber") or t["subscriber"]
        dead_letters = refs.get("dead_letter_sink") or d.get("dead_letter_sink") or "-"
        rows.append((t["name"], filters, sink, str(d["retry"]), dead_letters))
    print_table(rows)
    return 0


def run_delete(args: argparse.Namespace) -> int:
    url = f"{args.url.rstrip('/')}/brokers/default/triggers/{args.name}"
    status, answer = request_json("DELETE", url, headers=auth_headers(args, ADMIN))
    fail_unless(status, answer, 204)
    print(f"trigger {args.name} deleted")
    return 0
