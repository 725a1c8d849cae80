"""How big a request's head may be on DataFrost's servers, and what they answer beyond it.

The public limits are Envoy's defaults, which Kourier applies in front of every Knative Service: 60 KiB
of request line and header fields, 100 header fields. A function's own server sits behind a proxy (the
local gateway, or Knative's queue-proxy) that adds a few headers of its own, so it allows that much
more: whatever the edge let through still reaches the function. Every refusal is a 431 with the JSON
error body every other answer has.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER_FIELDS_TOO_LARGE = 431


@dataclass(frozen=True)
class HeaderLimits:
    max_fields: int  # header fields (a field sent twice counts twice)
    max_bytes: int  # request line and header fields together

    def too_many_fields(self, count: int) -> str:
        return f"the request has {count} header fields, over the limit of {self.max_fields}"

    def too_many_bytes(self) -> str:
        return head_over(self.max_bytes)


def head_over(max_bytes: int) -> str:
    """Why a request head over `max_bytes` is refused."""
    return f"the request line and header fields are over the limit of {max_bytes} bytes"


EDGE = HeaderLimits(max_fields=100, max_bytes=60 * 1024)  # the gateway, as Kourier
FORWARDED_ALLOWANCE = HeaderLimits(max_fields=20, max_bytes=8 * 1024)  # what a proxy adds on its way
BEHIND_PROXY = HeaderLimits(
    EDGE.max_fields + FORWARDED_ALLOWANCE.max_fields, EDGE.max_bytes + FORWARDED_ALLOWANCE.max_bytes
)  # a function's own server
