"""Event sources on Knative: MinIO's AMQP notifications (the alternative to MinIO's webhook target),
and the PingSource that drives the catalog's reconciler.

MinIO publishes each notification to a durable direct exchange; a quorum queue bound to it with
MinIO's routing key keeps them (declared by the RabbitMQ topology operator, `predeclared` for the
source, so the exchange's type is the one MinIO is configured with); a RabbitmqSource consumes the
queue, one message at a time (order per bucket matters: create then delete), and POSTs each as a
`dev.knative.rabbitmq.event` to storage-events' `/rabbitmq` route.
"""

from __future__ import annotations

import json

from deploy.common import NAMESPACE, RABBITMQ_CLUSTER, Resource, broker_sink, metadata, service_ref
from eventing.durations import format_duration
from eventing.trigger import DeliverySpec
from functions.registry import served_by
from functions.spec import Serves
from pipeline.events import RECONCILE_PING_DATA as PING_DATA
from shared.settings import from_env

SOURCE = "minio-notifications"
TOPOLOGY_API = "rabbitmq.com/v1beta1"


def _cluster() -> dict[str, str]:
    return {"name": RABBITMQ_CLUSTER, "namespace": NAMESPACE}


def minio_source() -> list[Resource]:
    """The exchange, queue and binding MinIO's AMQP target feeds, and the RabbitmqSource reading it."""
    defaults = from_env({})  # the exchange and routing key `datafrost dev` reads MinIO's AMQP target with
    exchange = {
        "apiVersion": TOPOLOGY_API,
        "kind": "Exchange",
        "metadata": metadata(f"{SOURCE}-exchange"),
        "spec": {
            "name": defaults.storage_amqp_exchange,
            "type": "direct",
            "durable": True,
            "autoDelete": False,
            "rabbitmqClusterReference": _cluster(),
        },
    }
    queue = {
        "apiVersion": TOPOLOGY_API,
        "kind": "Queue",
        "metadata": metadata(f"{SOURCE}-queue"),
        "spec": {"name": SOURCE, "type": "quorum", "durable": True, "rabbitmqClusterReference": _cluster()},
    }
    binding = {
        "apiVersion": TOPOLOGY_API,
        "kind": "Binding",
        "metadata": metadata(f"{SOURCE}-binding"),
        "spec": {
            "source": defaults.storage_amqp_exchange,
            "destination": SOURCE,
            "destinationType": "queue",
            "routingKey": defaults.storage_amqp_routing_key,
            "rabbitmqClusterReference": _cluster(),
        },
    }
    delivery = DeliverySpec()
    receiver, route = served_by(Serves.STORAGE_AMQP)  # storage-events' route for RabbitmqSource events
    source = {
        "apiVersion": "sources.knative.dev/v1alpha1",
        "kind": "RabbitmqSource",
        "metadata": metadata(SOURCE),
        "spec": {
            "rabbitmqClusterReference": _cluster(),
            "rabbitmqResourcesConfig": {"predeclared": True, "queueName": SOURCE, "parallelism": 1},
            "delivery": {
                "retry": delivery.retry,
                "backoffPolicy": delivery.backoff_policy,
                "backoffDelay": format_duration(delivery.backoff_delay),
            },
            "sink": {"ref": service_ref(receiver.name), "uri": route.path},
        },
    }
    return [exchange, queue, binding, source]


PING_SOURCE = "reconcile"


def reconcile_ping() -> Resource:
    """The PingSource that drives the catalog's reconciler: a `dev.knative.sources.ping` into the
    broker every DATAFROST_RECONCILE_INTERVAL (rounded to whole minutes, cron's unit); the catalog's
    `reconcile` trigger takes it (a pass at start comes from the catalog's own first ping)."""
    interval = from_env({}).reconcile.interval_seconds
    minutes = max(1, round(interval / 60))
    return {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "PingSource",
        "metadata": metadata(PING_SOURCE),
        "spec": {
            "schedule": f"*/{minutes} * * * *" if minutes < 60 else f"0 */{max(1, minutes // 60)} * * *",
            "contentType": "application/json",
            "data": json.dumps(PING_DATA),
            "sink": broker_sink(),
        },
    }
