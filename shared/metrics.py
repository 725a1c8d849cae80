"""Prometheus metrics shared by the broker and every function (base units, bounded labels)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Gauges read at scrape time (registered by the process that can read them, see register_gauge).
BROKER_QUEUE_DEPTH = "datafrost_broker_queue_depth"  # the local runner's broker, per trigger
CATALOG_IMAGES = "datafrost_catalog_images"  # the catalog function, per status
# The reconciler's last pass as the catalog keeps it: when it finished (per bucket), and what it found
# per reason (missing, stuck, gone, gave_up, unnotified, deferred), read from the catalog's database.
RECONCILE_LAST_PASS_TIME = "datafrost_reconcile_last_pass_timestamp_seconds"
RECONCILE_LAST_PASS_ITEMS = "datafrost_reconcile_last_pass_items"
SCRAPE_TIME_GAUGES = (BROKER_QUEUE_DEPTH, CATALOG_IMAGES, RECONCILE_LAST_PASS_TIME, RECONCILE_LAST_PASS_ITEMS)
# Gauges of stored state, not of the process: while a function is scaled to zero the local gateway's
# /metrics shows the values it exported last (its state cannot change while it is not running).
KEPT_WHILE_STOPPED = frozenset({CATALOG_IMAGES, RECONCILE_LAST_PASS_TIME, RECONCILE_LAST_PASS_ITEMS})

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Broker: labelled by broker and trigger name (both bounded by configuration, never by event ids).
events_received = Counter(
    "datafrost_broker_events_received_total", "Events accepted by the broker ingress.", ["broker"]
)
events_rejected = Counter(
    "datafrost_broker_events_rejected_total", "Requests refused by the broker ingress.", ["broker", "reason"]
)
events_dropped = Counter(
    "datafrost_broker_events_dropped_total",
    "Events the broker dropped instead of storing, by reason (ttl_expired: the loop guard).",
    ["broker", "reason"],
)
events_delivered = Counter(
    "datafrost_broker_events_delivered_total", "Events a subscriber answered with 2xx.", ["trigger"]
)
delivery_retries = Counter(
    "datafrost_broker_delivery_retries_total", "Delivery attempts that were retried.", ["trigger"]
)
events_dead_lettered = Counter(
    "datafrost_broker_events_dead_lettered_total",
    "Events that exhausted or failed delivery, by what became of them.",
    ["trigger", "outcome"],
)
replies_published = Counter(
    "datafrost_broker_replies_published_total", "Reply events re-published into the broker.", ["trigger"]
)
delivery_latency = Histogram(
    "datafrost_broker_delivery_duration_seconds",
    "Time from dispatch to the final outcome of one event for one trigger, retries included.",
    ["trigger"],
    buckets=LATENCY_BUCKETS,
)

# Functions: labelled by function, event type (a fixed vocabulary) and outcome.
function_events = Counter(
    "datafrost_function_events_total", "Events handled by a function.", ["function", "type", "outcome"]
)
function_event_duration = Histogram(
    "datafrost_function_event_duration_seconds",
    "Time a function spent handling one event.",
    ["function", "type"],
    buckets=LATENCY_BUCKETS,
)
function_requests = Counter(
    "datafrost_function_requests_total", "HTTP requests a function answered.", ["function", "method", "code"]
)


def event_type_label(event_type: str, known: Collection[str]) -> str:
    """An event type as a label value: one of the `known` types, else "other" (label sets stay bounded
    even when anyone can send any type to the broker)."""
    return event_type if event_type in known else "other"


def exposition() -> tuple[bytes, str]:
    """The process's metrics in the Prometheus text format, with its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


# Image work: what inspect and thumbnail read and write, and how long it takes.
image_bytes = Counter(
    "datafrost_image_bytes_processed_total",
    "Image bytes read (originals) and written (variants).",
    ["function", "direction"],
)
image_processing_duration = Histogram(
    "datafrost_image_processing_duration_seconds",
    "Time to inspect or render one image, fetching it included.",
    ["operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)

# Scale from zero: each function process counts its own start (on Knative, one per new pod); the local
# runner also times how long a start takes until the process answers.
cold_starts = Counter(
    "datafrost_function_cold_starts_total",
    "Function processes started (scale from zero or up).",
    ["function"],
)
cold_start_duration = Histogram(
    "datafrost_function_cold_start_duration_seconds",
    "Time from starting a function process to its first ready answer.",
    ["function"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)

# Auth: credentials the dev issuer refused, by reason (Keycloak's event error names where it has one;
# a fixed vocabulary, never a username or an address).
INVALID_USER_CREDENTIALS = "invalid_user_credentials"  # wrong password, or no such user
INVALID_CLIENT_CREDENTIALS = "invalid_client_credentials"  # wrong client secret, or no such client
USER_TEMPORARILY_DISABLED = "user_temporarily_disabled"  # refused unchecked: the user is locked out
CLIENT_TEMPORARILY_DISABLED = "client_temporarily_disabled"  # refused unchecked: the client is locked out
ADDRESS_TEMPORARILY_BLOCKED = "address_temporarily_blocked"  # refused unchecked: the address is locked out
INVALID_DEV_TOKEN_SECRET = "invalid_dev_token_secret"  # POST /dev/token without the data dir's secret
auth_login_failures = Counter(
    "datafrost_auth_login_failures_total",
    "Credentials the dev issuer refused, and attempts refused unchecked during a lockout, by reason.",
    ["reason"],
)


# The reconciler (the catalog): passes, what they repaired, and objects no notification ever announced.
reconcile_passes = Counter(
    "datafrost_reconcile_passes_total", "Reconciler passes the catalog ran, by outcome.", ["outcome"]
)
reconcile_repairs = Counter(
    "datafrost_reconcile_repairs_total",
    "Records the reconciler repaired, by reason (missing, stuck, gone, gave_up).",
    ["reason"],
)
reconcile_unnotified = Counter(
    "datafrost_reconcile_unnotified_objects_total",
    "Objects the reconciler found in the uploads bucket without any event (a store that does not notify?).",
)
# `datafrost dev`'s probe at start: 1 when a probe object's notification reached storage-events, 0 when
# none came in time (the store sends no notifications); no sample before the probe ends.
storage_notifications_ok = Gauge(
    "datafrost_storage_notifications_ok",
    "Whether the store's notifications reach storage-events (the start probe), per bucket.",
    ["bucket"],
)


class GaugeCollector(Collector):
    """A gauge read at scrape time: `read()` gives label value -> number (empty when unavailable)."""

    def __init__(self, name: str, documentation: str, label: str, read: Callable[[], Mapping[str, float]]):
        self.name, self.documentation, self.label, self.read = name, documentation, label, read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, number in sorted(self.read().items()):
            family.add_metric([value], number)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.documentation, labels=[self.label])


def register_gauge(
    name: str, documentation: str, label: str, read: Callable[[], Mapping[str, float]]
) -> Collector:
    """Register a scrape-time gauge with the process registry (once per name); returns it."""
    collector = GaugeCollector(name, documentation, label, read)
    REGISTRY.register(collector)
    return collector
