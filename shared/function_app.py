"""functions-framework's app for one function, as DataFrost serves it locally and on Knative.

Two changes to the app functions-framework makes (`create_app`, its public entry):
- a path that is not canonical gets a JSON 400 before Flask's router can redirect it (`shared.paths`);
- its `read_request` after-request hook is removed: it reads the whole request body before every
  answer, so a body refused from its headers (401, 403, 413) would be received anyway. The server
  closes a connection whose body was not read instead (`localplatform.http_server`).
"""

from __future__ import annotations

from typing import Any

from shared.paths import WsgiApp, refuse_ambiguous_paths


def function_app(target: str, source: str) -> WsgiApp:
    import functions_framework  # the function's own imports happen here, on the process's start

    app: Any = functions_framework.create_app(target=target, source=source, signature_type="http")
    hooks = app.after_request_funcs.get(None, [])
    app.after_request_funcs[None] = [h for h in hooks if h is not functions_framework.read_request]
    return refuse_ambiguous_paths(app)
