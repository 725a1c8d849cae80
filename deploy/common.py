"""Names and helpers every generated Knative resource shares."""

from __future__ import annotations

from typing import Any

NAMESPACE = "datafrost"
IMAGE = "ghcr.io/datafrost/datafrost:latest"  # set with `kustomize edit set image` on deploy
BROKER = "default"
RABBITMQ_CLUSTER = "rabbitmq"
CONFIG_MAP = "datafrost-config"
SECRET = "datafrost-secrets"
PART_OF = {"app.kubernetes.io/part-of": "datafrost"}
SINK_LABEL = "datafrost.dev/sink"  # on the Services of functions that post to the broker (SinkBinding)
PORT = 8080  # the container port functions-framework serves on (Knative's PORT)
Resource = dict[str, Any]


def metadata(name: str, namespace: str = NAMESPACE, **extra: Any) -> dict[str, Any]:
    """Object metadata with the project's label."""
    return {"name": name, "namespace": namespace, "labels": dict(PART_OF), **extra}


def broker_sink() -> dict[str, Any]:
    """A sink that is the project's Broker (for sources and bindings that post events)."""
    return {
        "ref": {
            "apiVersion": "eventing.knative.dev/v1",
            "kind": "Broker",
            "name": BROKER,
            "namespace": NAMESPACE,
        }
    }


def service_ref(name: str) -> dict[str, str]:
    """A reference to one of the generated Knative Services (an Addressable)."""
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": name, "namespace": NAMESPACE}
