"""The CloudEvent model DataFrost passes around: canonical string attributes plus raw data bytes."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared import tracing

SPECVERSION = "1.0"
REQUIRED_ATTRIBUTES = ("id", "source", "specversion", "type")
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class CloudEvent:
    """A validated CloudEvent.

    `attributes` holds every context attribute and extension in its canonical string form (the form
    binary HTTP mode and AMQP headers carry); `data` is the payload bytes, or None when absent.
    """

    attributes: Mapping[str, str]
    data: bytes | None = None

    @property
    def id(self) -> str:
        return self.attributes["id"]

    @property
    def type(self) -> str:
        return self.attributes["type"]

    @property
    def source(self) -> str:
        return self.attributes["source"]

    @property
    def subject(self) -> str | None:
        return self.attributes.get("subject")

    @property
    def datacontenttype(self) -> str | None:
        return self.attributes.get("datacontenttype")

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.attributes.get(name, default)

    def json(self) -> Any:
        """The data decoded as JSON (None when there is no data); ValueError when it is not JSON, or is
        nested too deeply to decode."""
        if self.data is None:
            return None
        try:
            return json.loads(self.data)
        except RecursionError:
            raise ValueError("event data is JSON nested too deeply to read") from None

    def with_attributes(self, **extra: str) -> CloudEvent:
        """A copy with attributes added or replaced."""
        return CloudEvent({**self.attributes, **extra}, self.data)


def rfc3339_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _encode_data(data: Any) -> bytes | None:
    if data is None:
        return None
    if isinstance(data, bytes):
        return data
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = dataclasses.asdict(data)
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def new_event(
    type: str,
    source: str,
    data: Any = None,
    *,
    id: str | None = None,
    subject: str | None = None,
    datacontenttype: str = JSON_CONTENT_TYPE,
    extensions: Mapping[str, str] | None = None,
) -> CloudEvent:
    """Build a CloudEvent; `data` may be a dataclass, a JSON-able value or raw bytes.

    Inside traced work (`shared.tracing.continued`) it carries that work's `traceparent`: the parent of
    whatever handles the event next (W3C: the parent-id is the sender's span).
    """
    attributes: dict[str, str] = {
        "specversion": SPECVERSION,
        "id": id or str(uuid.uuid4()),
        "source": source,
        "type": type,
        "time": rfc3339_now(),
    }
    if subject is not None:
        attributes["subject"] = subject
    encoded = _encode_data(data)
    if encoded is not None:
        attributes["datacontenttype"] = datacontenttype
    traceparent = tracing.current()
    if traceparent is not None:  # made while handling traced work: that hop is the next one's parent
        attributes[tracing.TRACEPARENT] = traceparent
    attributes.update(extensions or {})
    return CloudEvent(attributes, encoded)
