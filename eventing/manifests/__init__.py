"""Knative manifests rendered from the function registry: the same specs the local runner reads.

Pure: specs in, Kubernetes resources (dicts) out, in a fixed order, so rendering twice is identical.
"""

from __future__ import annotations

from eventing.manifests.broker import broker, trigger
from eventing.manifests.common import NAMESPACE, Resource
from eventing.manifests.serving import service
from functions.spec import FunctionSpec


def render(specs: tuple[FunctionSpec, ...]) -> dict[str, list[Resource]]:
    """File name -> resources, in a stable order."""
    return {
        "namespace.yaml": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}],
        "broker.yaml": broker(),
        "services.yaml": [service(s) for s in specs],
        "triggers.yaml": [trigger(s, t) for s in specs for t in s.triggers],
    }
