"""Entry point of one local function process: functions-framework serving functions/<name>/main.py.

`python -m eventing.serve NAME PORT`. It binds to loopback only and exits when the process that
started it dies, so a killed `datafrost dev` leaves no orphans behind.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
TARGET = "handle"


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(0)


def main(argv: list[str]) -> None:
    if len(argv) != 2 or not argv[1].isdigit():
        sys.exit("usage: python -m eventing.serve FUNCTION PORT")
    name, port = argv[0], int(argv[1])
    source = FUNCTIONS_DIR / name.replace("-", "_") / "main.py"
    if not source.is_file():
        sys.exit(f"no function {name!r}: {source} does not exist")
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    os.environ.setdefault("K_SERVICE", name)
    os.environ["PORT"] = str(port)

    from functions_framework import create_app
    from functions_framework._http import create_server

    app = create_app(TARGET, str(source), "http")
    create_server(app, False).run("127.0.0.1", port)


if __name__ == "__main__":
    main(sys.argv[1:])
