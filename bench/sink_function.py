"""The benchmark sink: a functions-framework `http` function that counts the events POSTed to it.

`POST` (any path) counts one event and answers 204. `GET` answers the count so far as plain text;
`GET /?until=N&timeout=S` first waits up to S seconds for the count to reach N, so the benchmark
learns when the last event arrived without polling. Run with `python -m functions_framework
--source bench/sink_function.py --target handle`; gunicorn runs one worker process by default (many
threads), so one in-process counter sees every request.
"""

from __future__ import annotations

import threading

import flask

_changed = threading.Condition()
_count = 0
_until = 0  # the count a waiting GET wants; POSTs wake it once reached


def handle(request: flask.Request) -> flask.Response:
    global _count, _until
    if request.method == "GET":
        until = request.args.get("until", default=0, type=int)
        timeout = min(request.args.get("timeout", default=0.0, type=float), 30.0)
        with _changed:
            _until = until
            _changed.wait_for(lambda: _count >= until, timeout=timeout)
            return flask.Response(str(_count), mimetype="text/plain")
    request.get_data()  # read the body, as a real function would
    with _changed:
        _count += 1
        if _count >= _until:
            _changed.notify_all()
    return flask.Response(status=204)
