"""`datafrost token`: a JWT from the dev issuer of a running `datafrost dev`, for curl and scripts.

The dev issuer mints it without a password for callers on this machine that send the platform's dev
token secret, read from `<data dir>/auth/dev-token-secret` (--data-dir, default $DATAFROST_DATA_DIR,
else `.datafrost`, `datafrost dev`'s own default). A `--user` the dev realm does not know is added to
it (with --roles, else editor; its password goes to `<data dir>/auth/credentials.txt`), and gets a
folder in the local store's uploads bucket: only for callers on loopback, only with the dev issuer.
"""

from __future__ import annotations

import argparse

from cli.common import CliError, add_url, fail_unless, request_dev_token

ROLES = ("viewer", "editor", "admin")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("token", help="print a JWT from the dev issuer (default: the demo user)")
    parser.add_argument(
        "--user", default="demo", help="a user of the dev realm, added to it when new (default %(default)s)"
    )
    parser.add_argument("--roles", help="comma-separated: viewer, editor, admin (default: the user's own)")
    parser.add_argument(
        "--ttl", type=int, default=3600, help="seconds the token is valid (default %(default)s)"
    )
    add_url(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    body: dict[str, object] = {"user": args.user, "ttl": args.ttl, "create": True}
    if args.roles:
        roles = [r.strip() for r in args.roles.split(",") if r.strip()]
        unknown = [r for r in roles if r not in ROLES]
        if unknown:
            raise CliError(f"--roles: unknown role(s) {', '.join(unknown)} (choose from {', '.join(ROLES)})")
        body["roles"] = roles
    if args.ttl <= 0:
        raise CliError("--ttl must be a positive number of seconds")
    status, answer = request_dev_token(args, body)
    if status == 404:
        raise CliError(
            f"this platform has no dev issuer (auth is off, or it uses a real identity provider): no token "
            f"for {args.user}; get one from that provider, and make users there"
        )
    fail_unless(status, answer, 200)
    print(answer["access_token"])
    return 0
