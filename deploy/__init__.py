"""Knative manifests rendered from the function registry: the same specs the local runner reads.

Pure: specs in, Kubernetes resources (dicts) out, in a fixed order, so rendering twice is identical.
"""

from __future__ import annotations

import json

from deploy.broker import broker, sink_binding, trigger
from deploy.common import NAMESPACE, Resource
from deploy.config import cluster_settings, config_map
from deploy.dashboard import dashboard, dashboard_config_map
from deploy.kourier import config_kourier_patch, extauthz_service
from deploy.serving import service
from deploy.sources import minio_source, reconcile_ping
from functions.spec import FunctionSpec

# Applied with `kubectl -n knative-serving patch`, not part of the kustomization (Knative owns them).
PATCHES = ("kourier/config-kourier.yaml",)


def namespace() -> Resource:
    # bindings.knative.dev/include: SinkBinding's webhook acts on this namespace in either of its modes.
    labels = {"bindings.knative.dev/include": "true"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}}


def render(specs: tuple[FunctionSpec, ...]) -> dict[str, list[Resource]]:
    """File name -> resources, in a stable order."""
    return {
        "namespace.yaml": [namespace()],
        "config.yaml": [config_map()],
        "broker.yaml": broker(),
        "services.yaml": [service(s) for s in specs],
        "triggers.yaml": [trigger(s, t, cluster_settings()) for s in specs for t in s.triggers],
        "sink-binding.yaml": [sink_binding()],
        "minio-source.yaml": minio_source(),
        "ping-source.yaml": [reconcile_ping()],
        "extauthz.yaml": [extauthz_service()],
        "kourier/config-kourier.yaml": [config_kourier_patch()],
        "monitoring/grafana-dashboard.yaml": [dashboard_config_map(dashboard_json())],
    }


def dashboard_json() -> str:
    """The dashboard as Grafana imports it (also written beside the manifests)."""
    return json.dumps(dashboard(), indent=2) + "\n"
