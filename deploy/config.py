"""The `datafrost-config` ConfigMap: what every function reads on a cluster that is not a secret.

Secrets (the MinIO URL with its keys, database URLs, tokens) go in the `datafrost-secrets` Secret the
README shows how to create; nothing secret is generated or committed. Override a value with a
kustomize patch in your own overlay (README: "Deploying to Knative").
"""

from __future__ import annotations

from deploy.common import CONFIG_MAP, Resource, metadata
from shared.settings import Settings, from_env

CLUSTER_SETTINGS = {
    "DATAFROST_LOG_LEVEL": "INFO",
    # Scratch space only: on a cluster, state lives in PostgreSQL and MinIO (see the Secret).
    "DATAFROST_DATA_DIR": "/tmp/datafrost",
    # Keycloak's realm; the tokens' `iss` must equal it exactly (replace in your overlay).
    "DATAFROST_AUTH_ISSUER": "https://keycloak.example.com/realms/datafrost",
    "DATAFROST_AUTH_DEV_ISSUER": "off",
    # In-cluster callers (the broker, the RabbitmqSource) reach functions through kourier-internal.
    "DATAFROST_AUTH_CLUSTER_LOCAL_SUFFIXES": ".svc.cluster.local,.svc",
    # The broker's dispatchers and the RabbitmqSource send no token: a function's service-role routes
    # (events, /metrics) trust the network on a cluster (cluster-local visibility, NetworkPolicies).
    "DATAFROST_AUTH_SERVICE_ROUTES": "network",
    "DATAFROST_UPLOADS_BUCKET": "uploads",
    "DATAFROST_VARIANTS_BUCKET": "variants",
}


def cluster_settings() -> Settings:
    """The settings every function reads on the cluster, as far as the ConfigMap decides them."""
    return from_env(dict(CLUSTER_SETTINGS))


def config_map() -> Resource:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(CONFIG_MAP),
        "data": dict(CLUSTER_SETTINGS),
    }
