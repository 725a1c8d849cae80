"""Optional OpenTelemetry export of the trace `shared.tracing` carries.

With the `otel` extra installed and OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) set, each hop
(an event a function handles, an HTTP request, an event storage-events publishes) becomes a span,
exported over OTLP/HTTP, whose ids are the ones the next `traceparent` carries. Without either, the
trace still flows through events and logs; nothing here is imported.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from shared.settings import Settings

log = logging.getLogger("datafrost.otel")
_tracers: list[Any] = []  # the process's tracer, once `configure` made one


def tracer() -> Any | None:
    """The process's tracer, or None when export is not configured (see `configure`)."""
    return _tracers[0] if _tracers else None


def configure(config: Settings) -> None:
    """Once per process, with its settings (the function runtime calls it on the first request)."""
    if not _tracers:
        made = _make_tracer(config)
        if made is not None:
            _tracers.append(made)


def _make_tracer(config: Settings) -> Any | None:
    """A tracer exporting over OTLP/HTTP, or None when no endpoint is set or the packages are missing."""
    if config.otel_endpoint is None:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the `otel` extra is not installed: no export")
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": config.function}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider.get_tracer("datafrost")


@contextlib.contextmanager
def span(tracer: Any, name: str, parent: str | None) -> Iterator[str]:
    """A span continuing `parent` (a traceparent, or a new trace); yields the span's own traceparent."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract({"traceparent": parent}) if parent else None
    with tracer.start_as_current_span(name, context=context) as current:
        ids = current.get_span_context()
        yield f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{int(ids.trace_flags):02x}"
