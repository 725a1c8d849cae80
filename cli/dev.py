"""`datafrost dev`: run the whole platform on this machine until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from cli.common import DEFAULT_DATA_DIR, CliError, print_table
from functions.registry import BROKER_PATH, all_specs
from localplatform import platform_file
from localplatform.broker.base import BrokerUnavailable
from localplatform.broker.durable import DurableBroker
from localplatform.runner import DevOptions, DevPlatform
from shared import logging as jsonlog
from shared.auth.dev_issuer import dev_token_secret_path
from shared.settings import database_variable


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("dev", help="run the whole platform on this machine")
    parser.add_argument("--host", default="127.0.0.1", help="gateway address (default: loopback only)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("DATAFROST_DATA_DIR") or DEFAULT_DATA_DIR),
        help="where the platform keeps its state (default: $DATAFROST_DATA_DIR, else %(default)s)",
    )
    parser.add_argument(
        "--broker",
        help="local (default; or $DATAFROST_BROKER): durable, in the data dir; memory: lost on exit; "
        "or amqp://user:pass@host:5672/",
    )
    parser.add_argument(
        "--store",
        help="local (default, under the data dir; or $DATAFROST_STORE) or http://KEY:SECRET@HOST:PORT",
    )
    parser.add_argument(
        "--db",
        help="database URL for every function with a database, unless its DATAFROST_<NAME>_DB is set "
        "(default: SQLite per function)",
    )
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="stop a function idle this long")
    parser.add_argument("--keep-warm", action="store_true", help="never stop idle functions")
    parser.add_argument("--demo", action="store_true", help="send a few sample events once started")
    parser.add_argument("--log-level", default="INFO")
    parser.set_defaults(run=run)


def _print_startup(platform: DevPlatform) -> None:
    url = platform.public_url
    store = platform.settings.store.rsplit("@", 1)[-1]  # never print the credentials
    broker = platform.settings.broker_url.rsplit("@", 1)[-1]
    if isinstance(platform.broker, DurableBroker):
        broker = f"local, in {_shown(platform.broker.events.path)}"
    print(f"DataFrost is running at {url}  (broker: {broker}, store: {store})")
    rows = [("FUNCTION", "KIND", "URL", "TRIGGERS")]
    for spec in platform.specs:
        triggers = ", ".join(spec.trigger_name(t) for t in spec.triggers) or "-"
        rows.append((spec.name, spec.kind, f"{url}/{spec.name}/", triggers))
    print_table(rows)
    print(f"broker ingress: POST {url}{BROKER_PATH}    metrics: {url}/metrics    Ctrl-C stops")
    print(f"cluster-local (loopback only, no gateway check): {platform.internal_url}")
    if platform.auth.realm is not None:
        credentials = platform.data_dir / "auth" / "credentials.txt"
        print(f"auth: dev issuer {url}/authz/realms/datafrost; users and passwords in {credentials}")
        print("      `datafrost token` prints a token for the demo user; the CLI uses one by default")
        secret = dev_token_secret_path(platform.data_dir)
        print(f"      (both send the dev token secret of {secret} and find this platform through")
        print(
            f"      {platform.data_dir / platform_file.PLATFORM_FILE}: pass --data-dir from another folder)"
        )
    sys.stdout.flush()


def _shown(path: Path) -> Path:
    """`path` relative to the working directory when it is under it."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _token_command(data_dir: Path) -> str:
    """`datafrost token` as run from here: it finds this platform through its data dir."""
    default = Path(os.environ.get("DATAFROST_DATA_DIR") or DEFAULT_DATA_DIR).resolve()
    return "datafrost token" + ("" if data_dir == default else f" --data-dir {shlex.quote(str(data_dir))}")


def _env_for(args: argparse.Namespace) -> dict[str, str]:
    """Flags become the environment every process builds its typed settings from."""
    env = {}
    if args.broker:
        env["DATAFROST_BROKER"] = args.broker
    if args.store:
        env["DATAFROST_STORE"] = args.store
    if args.db:
        for spec in all_specs():
            if spec.database:
                variable = database_variable(spec.name)
                env[variable] = os.environ.get(variable, args.db)
    return env


def run(args: argparse.Namespace) -> int:
    jsonlog.configure("dev", args.log_level.upper())
    options = DevOptions(
        extra_env=_env_for(args),
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        idle_seconds=args.idle_seconds,
        keep_warm=args.keep_warm,
    )
    running = platform_file.read(args.data_dir)
    if running is not None:
        raise CliError(
            f"a datafrost dev (pid {running.pid}) already runs on {args.data_dir} at {running.url}: "
            "stop it, or pass another --data-dir"
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

            run_demo(platform.public_url, platform.auth.token_for("demo"), _token_command(platform.data_dir))
        stop.wait()
        print("stopping...", flush=True)
    finally:
        platform.shutdown()
    return 0
