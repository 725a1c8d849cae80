"""Knative manifests rendered from the function registry: the same specs the local runner reads.

Pure: specs in, Kubernetes resources (dicts) out, in a fixed order, so rendering twice is identical.
"""

from __future__ import annotations

from typing import Any

from eventing.durations import format_duration
from functions.spec import DEAD_LETTERS_FUNCTION, FunctionSpec, TriggerSpec

NAMESPACE = "datafrost"
IMAGE = "ghcr.io/datafrost/datafrost:latest"  # set with `kustomize edit set image` on deploy
BROKER = "default"
RABBITMQ_CLUSTER = "rabbitmq"
CONFIG_MAP = "datafrost-config"
SECRET = "datafrost-secrets"
PARALLELISM_ANNOTATION = "rabbitmq.eventing.knative.dev/parallelism"
Resource = dict[str, Any]


def _metadata(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": NAMESPACE,
        "labels": {"app.kubernetes.io/part-of": "datafrost"},
        **extra,
    }


def service(spec: FunctionSpec) -> Resource:
    """One Knative Service: the single image, this function's source and target, its scaling."""
    scaling = spec.scaling
    env = [
        {"name": "FUNCTION_SOURCE", "value": f"functions/{spec.package}/main.py"},
        {"name": "FUNCTION_TARGET", "value": "handle"},
        *({"name": k, "value": v} for k, v in sorted(spec.env.items())),
    ]
    annotations = {
        "autoscaling.knative.dev/min-scale": str(scaling.min_scale),
        "autoscaling.knative.dev/max-scale": str(scaling.max_scale),
        "autoscaling.knative.dev/target": str(scaling.target_concurrency),
    }
    container = {
        "name": "function",
        "image": IMAGE,
        "ports": [{"containerPort": 8080}],
        "env": env,
        "envFrom": [
            {"configMapRef": {"name": CONFIG_MAP}},
            {"secretRef": {"name": SECRET, "optional": True}},
        ],
        "readinessProbe": {"httpGet": {"path": "/readyz"}},
        "livenessProbe": {"httpGet": {"path": "/healthz"}},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    }
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": _metadata(spec.name),
        "spec": {
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "containerConcurrency": scaling.container_concurrency,
                    "timeoutSeconds": scaling.timeout_seconds,
                    "containers": [container],
                },
            }
        },
    }


def _ref(name: str) -> dict[str, str]:
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": name, "namespace": NAMESPACE}


def trigger(spec: FunctionSpec, t: TriggerSpec) -> Resource:
    """One Trigger: exact-match attributes, the delivery spec, dead letters to the dead-letters function."""
    d = t.delivery
    delivery: dict[str, Any] = {
        "retry": d.retry,
        "backoffPolicy": d.backoff_policy,
        "backoffDelay": format_duration(d.backoff_delay),
        "timeout": format_duration(d.timeout),
    }
    if t.dead_letters and spec.name != DEAD_LETTERS_FUNCTION:
        delivery["deadLetterSink"] = {"ref": _ref(DEAD_LETTERS_FUNCTION)}
    subscriber: dict[str, Any] = {"ref": _ref(spec.name)}
    if t.path != "/":
        subscriber["uri"] = t.path
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": _metadata(spec.trigger_name(t), annotations={PARALLELISM_ANNOTATION: str(t.parallelism)}),
        "spec": {
            "broker": BROKER,
            "filter": {"attributes": dict(sorted(t.filter.items()))},
            "subscriber": subscriber,
            "delivery": delivery,
        },
    }


def broker() -> list[Resource]:
    """The RabbitMQ broker and its config (quorum queues)."""
    config = {
        "apiVersion": "eventing.knative.dev/v1alpha1",
        "kind": "RabbitmqBrokerConfig",
        "metadata": _metadata(f"{BROKER}-config"),
        "spec": {
            "rabbitmqClusterReference": {"name": RABBITMQ_CLUSTER, "namespace": NAMESPACE},
            "queueType": "quorum",
        },
    }
    annotations = {"eventing.knative.dev/broker.class": "RabbitMQBroker"}
    resource = {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": _metadata(BROKER, annotations=annotations),
        "spec": {
            "config": {
                "apiVersion": "eventing.knative.dev/v1alpha1",
                "kind": "RabbitmqBrokerConfig",
                "name": f"{BROKER}-config",
            },
        },
    }
    return [config, resource]


def render(specs: tuple[FunctionSpec, ...]) -> dict[str, list[Resource]]:
    """File name -> resources, in a stable order."""
    return {
        "namespace.yaml": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}],
        "broker.yaml": broker(),
        "services.yaml": [service(s) for s in specs],
        "triggers.yaml": [trigger(s, t) for s in specs for t in s.triggers],
    }
