"""The `datafrost` command line: one sub-command per module, bad arguments end in one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cli import dev, functions_cmd, manifests, send, status, token, triggers, upload
from cli.common import CliError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"datafrost: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="datafrost", description="DataFrost: a bucket becomes an image pipeline.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in (dev, upload, send, functions_cmd, triggers, token, manifests, status):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CliError as exc:
        print(f"datafrost: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
