"""Sending CloudEvents over HTTP (binary mode): to the broker ingress or to any sink."""

from __future__ import annotations

import urllib3

from eventing.cloudevent import CloudEvent
from eventing.http_codec import to_binary
from shared import tracing

_http: urllib3.PoolManager | None = None


class SendError(RuntimeError):
    """The receiver refused the event or could not be reached."""


def _pool() -> urllib3.PoolManager:
    global _http
    if _http is None:
        _http = urllib3.PoolManager(retries=False)
    return _http


def send_event(
    url: str, event: CloudEvent, *, timeout: float = 10.0, headers: dict[str, str] | None = None
) -> int:
    """POST one event; returns the status, raises SendError for a non-2xx answer or no answer."""
    ce_headers, body = to_binary(event)
    try:
        response = _pool().request(
            "POST",
            url,
            body=body,
            headers={**ce_headers, **tracing.http_headers(event.get(tracing.TRACEPARENT)), **(headers or {})},
            timeout=timeout,
            redirect=False,
        )
    except urllib3.exceptions.HTTPError as exc:
        raise SendError(f"cannot reach {url}: {exc}") from None
    if not 200 <= response.status < 300:
        detail = response.data.decode(errors="replace")[:300]
        raise SendError(f"{url} answered {response.status}: {detail}")
    return response.status
