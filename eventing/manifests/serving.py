"""Knative Serving resources: one Service per function, from its spec."""

from __future__ import annotations

from eventing.manifests.common import CONFIG_MAP, IMAGE, SECRET, Resource, metadata
from functions.spec import FunctionSpec


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
        "metadata": metadata(spec.name),
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
