"""Kourier's external authorization: every request through the gateway is checked by `authz`.

Kourier's Envoy calls a host:port, not a Knative Service by name, so a plain Service selects the
authz pods (min-scale 1: never cold) at queue-proxy's port, and a merge patch for Kourier's
`config-kourier` ConfigMap (knative-serving namespace, owned by Knative: patched, not applied)
points the ext-authz filter at it over HTTP with authz's `/check` prefix.
"""

from __future__ import annotations

from deploy.common import NAMESPACE, Resource, metadata
from functions.registry import route_prefix, served_by
from functions.spec import Serves

AUTHZ, _CHECK = served_by(Serves.EXT_AUTHZ)  # the function that plays Kourier's ext-authz service
CHECK_PREFIX = route_prefix(_CHECK.path)
EXTAUTHZ_SERVICE = f"{AUTHZ.name}-extauthz"
QUEUE_PROXY_PORT = 8012  # queue-proxy's HTTP port in every Knative pod: keeps concurrency metrics
MAX_REQUEST_BODY_BYTES = 8192  # what authz is tested with; it never reads the body
KOURIER_CONTROLLER = "net-kourier-controller"  # its Deployment in knative-serving
# net-kourier reads the extauthz-* keys from config-kourier since knative-v1.19.0 (net-kourier #1334,
# commit cf879dd); older releases ignore them and leave the gateway open.
MIN_NET_KOURIER = "knative-v1.19.0"


def kourier_authz_steps(patch_file: str, namespace: str = NAMESPACE) -> list[str]:
    """Shell steps that put authz in front of Kourier, in order: authz Ready first (every request will
    wait on it), the patch, then a restart of Kourier's controller and a wait for it. net-kourier adds
    the ext-authz filter to its listeners at the next resync, but creates the Envoy cluster it points
    at only when the controller starts (pkg/generator/caches.go, NewCaches): without the restart every
    request is refused with a 403."""
    return [
        f"kubectl -n {namespace} wait ksvc/{AUTHZ.name} --for=condition=Ready --timeout=300s",
        f"kubectl -n knative-serving patch configmap config-kourier --type merge --patch-file {patch_file}",
        f"kubectl -n knative-serving rollout restart deployment/{KOURIER_CONTROLLER}",
        f"kubectl -n knative-serving rollout status deployment/{KOURIER_CONTROLLER} --timeout=300s",
    ]


def extauthz_service() -> Resource:
    """A ClusterIP Service in front of the authz pods, for Envoy's ext-authz cluster."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(EXTAUTHZ_SERVICE),
        "spec": {
            "selector": {"serving.knative.dev/service": AUTHZ.name},
            "ports": [{"name": "http", "port": 80, "targetPort": QUEUE_PROXY_PORT}],
        },
    }


def config_kourier_patch() -> Resource:
    """`kubectl -n knative-serving patch configmap config-kourier --type merge --patch-file ...`."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-kourier", "namespace": "knative-serving"},
        "data": {
            "extauthz-host": f"{EXTAUTHZ_SERVICE}.{NAMESPACE}.svc.cluster.local:80",
            "extauthz-protocol": "http",
            "extauthz-path-prefix": CHECK_PREFIX,
            "extauthz-max-request-body-bytes": str(MAX_REQUEST_BODY_BYTES),
            "extauthz-timeout": "2000",
            "extauthz-failure-mode-allow": "false",
        },
    }
