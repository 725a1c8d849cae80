"""`datafrost dev`: run the whole platform on this machine until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from cli.common import CliError, print_table
from eventing.broker.rabbitmq import BrokerUnavailable
from eventing.runner import DevOptions, DevPlatform
from shared import logging as jsonlog


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("dev", help="run the whole platform on this machine")
    parser.add_argument("--host", default="127.0.0.1", help="gateway address (default: loopback only)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--data-dir", type=Path, default=Path(".datafrost"))
    parser.add_argument("--broker", default="memory", help="memory (default) or amqp://user:pass@host:5672/")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="stop a function idle this long")
    parser.add_argument("--keep-warm", action="store_true", help="never stop idle functions")
    parser.add_argument("--demo", action="store_true", help="send a few sample events once started")
    parser.add_argument("--log-level", default="INFO")
    parser.set_defaults(run=run)


def _print_startup(platform: DevPlatform) -> None:
    url = platform.public_url
    print(f"DataFrost is running at {url}  (broker: {platform.options.broker.split('@')[-1]})")
    rows = [("FUNCTION", "KIND", "URL", "TRIGGERS")]
    for spec in platform.specs:
        triggers = ", ".join(spec.trigger_name(t) for t in spec.triggers) or "-"
        rows.append((spec.name, spec.kind, f"{url}/{spec.name}/", triggers))
    print_table(rows)
    print(f"broker ingress: POST {url}/brokers/default    metrics: {url}/metrics    Ctrl-C stops")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    jsonlog.configure("dev", args.log_level.upper())
    options = DevOptions(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        broker=args.broker,
        idle_seconds=args.idle_seconds,
        keep_warm=args.keep_warm,
    )
    platform = DevPlatform(options)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        platform.start()
    except OSError as exc:
        platform.shutdown()
        raise CliError(f"cannot start on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except (ValueError, BrokerUnavailable) as exc:
        platform.shutdown()
        raise CliError(str(exc)) from None
    try:
        _print_startup(platform)
        if args.demo:
            from cli.demo import run_demo

            run_demo(platform.internal_url)
        stop.wait()
        print("stopping...", flush=True)
    finally:
        platform.shutdown()
    return 0
