"""The `datafrost` command line: one sub-command per module, bad arguments end in one line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from cli import dev, functions_cmd, manifests, send, status, token, triggers, upload
from cli.common import CliError, resolve_url


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"datafrost: error: {message} (see --help)\n")

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        """Parsed, and a command's --url filled in from the data dir's running platform when unset."""
        namespace, extras = super().parse_known_args(*args, **kwargs)
        resolve_url(namespace)
        return namespace, extras


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="datafrost", description="DataFrost: a bucket becomes an image pipeline.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in (dev, upload, send, functions_cmd, triggers, token, manifests, status):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _run(argv)
        sys.stdout.flush()  # a reader that went away is found here, not at interpreter exit
    except BrokenPipeError:
        return _reader_gone()
    return code


def _run(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except SystemExit as exc:  # argparse's --help and usage errors: their exit code, after the flush
        return exc.code if isinstance(exc.code, int) else 1
    except CliError as exc:
        print(f"datafrost: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise  # the reader went away: `main` ends quietly
    except OSError as exc:  # a file or folder the command cannot use (permissions, a full disk...)
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"datafrost: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except Exception as exc:  # never a traceback: one line, and what to report
        print(f"datafrost: error: unexpected {type(exc).__name__}: {exc} (please report it)", file=sys.stderr)
        return 1


def _reader_gone() -> int:
    """Whoever read our output (`| head -1`) stopped reading: exit quietly, as SIGPIPE would end a C
    tool. Python's advice (the `signal` docs, "Note on SIGPIPE"): point stdout at devnull, so the
    flush at interpreter exit does not raise a second time."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141  # 128 + SIGPIPE, what a shell reports for a tool SIGPIPE ended


if __name__ == "__main__":
    sys.exit(main())
