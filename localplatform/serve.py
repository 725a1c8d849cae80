"""Entry point of one local function process: functions-framework's app for the function, on cheroot.

`python -m localplatform.serve NAME PORT [MAX_BODY_BYTES]` (the largest body any of the function's
routes takes: the server refuses a larger one with 413 before receiving it; the runtime checks each
route's own limit). The app is functions-framework's own (`create_app` with
the function's source and target, the same call func's entry makes on Knative); the gateway's server
(`localplatform.http_server`: the app sees the headers before the body, and the server's own refusals
are JSON) serves it in this one process (functions-framework's default server is gunicorn, a master
and a worker: two processes per function). It binds to loopback only and exits when the process that
started it dies (`DATAFROST_PARENT_PID`, set by the runner: a parent that died before this process
looked is noticed too), so a killed `datafrost dev` leaves no orphans holding ports. A thread that
watches the parent, not `PR_SET_PDEATHSIG`: that fires when the parent *thread* that started the
process ends, and the runner starts functions from its request threads.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from functions.spec import TARGET, function_source
from shared.function_app import function_app
from shared.http_limits import BEHIND_PROXY

DEFAULT_MAX_BODY = 1 << 30  # 1 GiB, when the runner names no limit
THREADS = 16  # requests served at once; deliveries are bounded by each trigger's parallelism


PARENT_POLL_SECONDS = 0.2


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(0)


def main(argv: list[str]) -> None:
    if len(argv) not in (2, 3) or not all(a.isascii() and a.isdigit() for a in argv[1:]):
        sys.exit("usage: python -m localplatform.serve FUNCTION PORT [MAX_BODY_BYTES]")
    name, port = argv[0], int(argv[1])
    max_body = int(argv[2]) if len(argv) == 3 else DEFAULT_MAX_BODY
    source = function_source(name)
    if not source.is_file():
        sys.exit(f"no function {name!r}: {source} does not exist")
    parent = os.environ.get("DATAFROST_PARENT_PID", "")
    parent_pid = int(parent) if parent.isdigit() else os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    os.environ.setdefault("K_SERVICE", name)
    os.environ["PORT"] = str(port)

    from localplatform.http_server import HttpServer

    # 413 before a byte over max_body arrives
    app = function_app(TARGET, str(source))
    server = HttpServer("127.0.0.1", port, app, max_body, BEHIND_PROXY, threads=THREADS)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
