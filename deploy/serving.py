"""Knative Serving resources: one Service per function, from its spec."""

from __future__ import annotations

from typing import Any

from deploy.common import CONFIG_MAP, IMAGE, PORT, SECRET, SINK_LABEL, Resource, metadata
from functions.spec import TARGET, FunctionSpec, Resources, relative_source
from shared.settings import database_variable

VISIBILITY_LABEL = "networking.knative.dev/visibility"


def container_resources(resources: Resources) -> dict[str, Any]:
    return {
        "requests": {"cpu": resources.cpu_request, "memory": resources.memory_request},
        "limits": {"memory": resources.memory_limit},
    }


def _probe(path: str) -> dict[str, Any]:
    # Knative accepts the port only when it is the container port; it probes through queue-proxy.
    return {"httpGet": {"path": path, "port": PORT}}


def service(spec: FunctionSpec) -> Resource:
    """One Knative Service: the single image, this function's source and target, its scaling."""
    scaling = spec.scaling
    env: list[dict[str, Any]] = [
        {"name": "FUNCTION_SOURCE", "value": relative_source(spec.name)},
        {"name": "FUNCTION_TARGET", "value": TARGET},
        *({"name": k, "value": v} for k, v in sorted(spec.env.items())),
    ]
    if spec.database:  # its own database: a required key of the Secret (the pod will not start without it)
        variable = database_variable(spec.name)
        env.append({"name": variable, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": variable}}})
    annotations = {
        "autoscaling.knative.dev/min-scale": str(scaling.min_scale),
        "autoscaling.knative.dev/max-scale": str(scaling.max_scale),
        "autoscaling.knative.dev/target": str(scaling.target_concurrency),
        # Prometheus' kubernetes-pods job scrapes each pod's own /metrics (not through Kourier)
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(PORT),
        "prometheus.io/path": "/metrics",
    }
    container = {
        "name": "function",
        "image": IMAGE,
        # functions-framework's server speaks HTTP/1.1 only, so no function declares h2c.
        "ports": [{"name": "http1", "containerPort": PORT}],
        "env": env,
        "envFrom": [{"configMapRef": {"name": CONFIG_MAP}}, {"secretRef": {"name": SECRET}}],
        "readinessProbe": _probe("/readyz"),
        "livenessProbe": _probe("/healthz"),
        "resources": container_resources(spec.resources),
    }
    meta = metadata(spec.name)
    if spec.uses_sink:
        meta["labels"][SINK_LABEL] = "broker"
    if spec.visibility == "cluster-local":  # no route on Kourier's public listener
        meta["labels"][VISIBILITY_LABEL] = "cluster-local"
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": meta,
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
