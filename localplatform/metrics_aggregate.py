"""The gateway's `/metrics`: its own and every running function process's, in one exposition.

Each process's samples get a `process` label (the function's name, or `gateway`), so series that
every process has (`process_cpu_seconds_total`, say) stay distinct; families of the same name are
merged under one HELP and TYPE. Pure: texts in, text out.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Mapping

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

PROCESS_LABEL = "process"


class _Merged(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def merge(expositions: Mapping[str, str]) -> bytes:
    """One Prometheus text exposition of every process's metrics (process name -> its text)."""
    merged: dict[str, Metric] = {}
    for process, text in sorted(expositions.items()):
        for family in text_string_to_metric_families(text):
            target = merged.get(family.name)
            if target is None:
                target = merged[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            for s in family.samples:
                labels = {**s.labels, PROCESS_LABEL: process}
                target.samples.append(Sample(s.name, labels, s.value, s.timestamp, s.exemplar))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(list(merged.values())))
    return generate_latest(registry)


def only(text: str, families: Collection[str]) -> str:
    """The part of an exposition that is about the named families ("" when none is there)."""
    kept = [family for family in text_string_to_metric_families(text) if family.name in families]
    if not kept:
        return ""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(kept))
    return generate_latest(registry).decode()


class LastExports:
    """What each function exported last of the gauges of stored state (`families`), shown for it while
    it is scaled to zero: a stopped catalog still has its image counts."""

    def __init__(self, families: Collection[str]) -> None:
        self.families = frozenset(families)
        self._texts: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(self, function: str, text: str) -> None:
        kept = only(text, self.families)
        with self._lock:
            if kept:
                self._texts[function] = kept

    def last(self, function: str) -> str | None:
        with self._lock:
            return self._texts.get(function)
