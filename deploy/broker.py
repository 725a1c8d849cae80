"""Knative Eventing resources: the RabbitMQ broker, one Trigger per registry trigger, and the
SinkBinding that gives functions which post events themselves their K_SINK (the broker's address)."""

from __future__ import annotations

from typing import Any

from deploy.common import (
    BROKER,
    NAMESPACE,
    RABBITMQ_CLUSTER,
    SINK_LABEL,
    Resource,
    broker_sink,
    metadata,
    service_ref,
)
from eventing.durations import format_duration
from functions.registry import dead_letter_sink
from functions.spec import FunctionSpec, TriggerSpec
from shared.settings import Settings

PARALLELISM_ANNOTATION = "rabbitmq.eventing.knative.dev/parallelism"


def trigger(spec: FunctionSpec, t: TriggerSpec, config: Settings) -> Resource:
    """One Trigger: exact-match attributes (setting references resolved with the cluster's `config`),
    the delivery spec, dead letters to the registry's dead-letter sink."""
    d = t.delivery
    delivery: dict[str, Any] = {
        "retry": d.retry,
        "backoffPolicy": d.backoff_policy,
        "backoffDelay": format_duration(d.backoff_delay),
        "timeout": format_duration(d.timeout),
    }
    sink = dead_letter_sink()
    if t.dead_letters and sink is not None and spec.name != sink.name:
        delivery["deadLetterSink"] = {"ref": service_ref(sink.name)}
    subscriber: dict[str, Any] = {"ref": service_ref(spec.name)}
    if t.path != "/":
        subscriber["uri"] = t.path
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": metadata(spec.trigger_name(t), annotations={PARALLELISM_ANNOTATION: str(t.parallelism)}),
        "spec": {
            "broker": BROKER,
            "filter": {"attributes": dict(sorted(t.resolved_filter(config).items()))},
            "subscriber": subscriber,
            "delivery": delivery,
        },
    }


def broker() -> list[Resource]:
    """The RabbitMQ broker and its config (quorum queues)."""
    config = {
        "apiVersion": "eventing.knative.dev/v1alpha1",
        "kind": "RabbitmqBrokerConfig",
        "metadata": metadata(f"{BROKER}-config"),
        "spec": {
            "rabbitmqClusterReference": {"name": RABBITMQ_CLUSTER, "namespace": NAMESPACE},
            "queueType": "quorum",
        },
    }
    annotations = {"eventing.knative.dev/broker.class": "RabbitMQBroker"}
    resource = {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": metadata(BROKER, annotations=annotations),
        "spec": {
            "config": {
                "apiVersion": "eventing.knative.dev/v1alpha1",
                "kind": "RabbitmqBrokerConfig",
                "name": f"{BROKER}-config",
            },
        },
    }
    return [config, resource]


def sink_binding() -> Resource:
    """K_SINK = the broker, injected into every Service labelled as posting to it (`uses_sink`)."""
    return {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "SinkBinding",
        "metadata": metadata(f"{BROKER}-broker-sink"),
        "spec": {
            "subject": {
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Service",
                "namespace": NAMESPACE,
                "selector": {"matchLabels": {SINK_LABEL: "broker"}},
            },
            "sink": broker_sink(),
        },
    }
