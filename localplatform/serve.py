"""Entry point of one local function process: functions-framework's app for the function, on waitress.

`python -m localplatform.serve NAME PORT`. The app is functions-framework's own (`create_app` with
the function's source and target, the same call func's entry makes on Knative); waitress serves it in
this one process (functions-framework's default server is gunicorn, a master and a worker: two
processes per function), with the head limits of a server behind a proxy, no body larger than any
function takes, and JSON error answers (`localplatform.http_server`). It binds to loopback only and
exits when the process that started it dies, so a killed `datafrost dev` leaves no orphans behind.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from functions.spec import TARGET, function_source

THREADS = 16  # requests served at once; deliveries are bounded by each trigger's parallelism


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(0)


def main(argv: list[str]) -> None:
    if len(argv) != 2 or not argv[1].isdigit():
        sys.exit("usage: python -m localplatform.serve FUNCTION PORT")
    name, port = argv[0], int(argv[1])
    source = function_source(name)
    if not source.is_file():
        sys.exit(f"no function {name!r}: {source} does not exist")
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    os.environ.setdefault("K_SERVICE", name)
    os.environ["PORT"] = str(port)

    from functions_framework import create_app

    from localplatform.http_server import create_server
    from shared.http_limits import BEHIND_PROXY
    from shared.settings import from_env

    app = create_app(TARGET, str(source), "http")
    create_server(
        app,
        BEHIND_PROXY,
        max_body_bytes=from_env(dict(os.environ)).max_request_bytes,
        host="127.0.0.1",
        port=port,
        threads=THREADS,
        ident=name,
        asyncore_use_poll=True,
        clear_untrusted_proxy_headers=False,
    ).run()


if __name__ == "__main__":
    main(sys.argv[1:])
