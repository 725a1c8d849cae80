"""The route policy, row by row, plus path normalisation and host routing."""

from __future__ import annotations

import pytest

from shared.auth.policy import RefusedPath, gateway_path, host_function, is_public, required_role

FUNCTIONS = frozenset({"catalog", "upload", "dead-letters", "authz", "storage-events", "inspect"})


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", "/healthz", None),
        ("HEAD", "/healthz", None),
        ("GET", "/catalog/healthz", None),
        ("GET", "/inspect/readyz", None),
        ("GET", "/authz/realms/datafrost/.well-known/openid-configuration", None),
        ("GET", "/authz/realms/datafrost/protocol/openid-connect/certs", None),
        ("POST", "/authz/realms/datafrost/protocol/openid-connect/token", None),
        ("POST", "/authz/dev/token", None),
        ("GET", "/web/", None),
        ("GET", "/web/app.js", None),
        ("POST", "/storage-events/", None),
        ("HEAD", "/storage-events/", None),
        ("POST", "/storage-events/rabbitmq", "service"),
        ("GET", "/storage-events/rabbitmq", "viewer"),
        ("POST", "/healthz", "admin"),
        ("DELETE", "/authz/realms/datafrost/protocol/openid-connect/certs", "admin"),
        ("POST", "/web/app.js", "admin"),
        ("POST", "/upload", "editor"),
        ("POST", "/upload/", "editor"),
        ("POST", "/upload/presign", "editor"),
        ("GET", "/upload/", "viewer"),
        ("GET", "/catalog/images", "viewer"),
        ("GET", "/catalog/images/abc/variants/thumb", "viewer"),
        ("HEAD", "/catalog/images/abc", "viewer"),
        ("DELETE", "/catalog/images/abc", "editor"),
        ("PUT", "/catalog/images/abc", "admin"),
        ("POST", "/brokers/default", "service"),
        ("POST", "/brokers/default/", "service"),
        ("GET", "/brokers/default/triggers", "admin"),
        ("POST", "/brokers/default/triggers", "admin"),
        ("DELETE", "/brokers/default/triggers/show-analyzed", "admin"),
        ("POST", "/dead-letters/", "service"),
        ("GET", "/dead-letters/", "admin"),
        ("GET", "/dead-letters/abc", "admin"),
        ("POST", "/dead-letters/abc/replay", "admin"),
        ("DELETE", "/dead-letters/abc", "admin"),
        ("POST", "/catalog/", "service"),
        ("POST", "/catalog", "service"),
        ("POST", "/inspect/", "service"),
        ("POST", "/catalog/images", "admin"),
        ("GET", "/metrics", "viewer"),
        ("GET", "/functions", "viewer"),
        ("GET", "/", "viewer"),
        ("PATCH", "/anything/else", "admin"),
    ],
)
def test_route_table(method: str, path: str, role: str | None) -> None:
    assert required_role(method, path) == role
    assert is_public(method, path) == (role is None)


def test_paths_are_normalised_before_matching() -> None:
    assert required_role("GET", "//dead-letters//") == "admin"
    assert required_role("post", "/upload//presign") == "editor"
    assert required_role("GET", "//healthz") is None


@pytest.mark.parametrize("path", ["/healthz/../dead-letters/", "/web/../dead-letters/x", "/./catalog/images"])
def test_dot_segments_are_refused(path: str) -> None:
    with pytest.raises(RefusedPath):
        required_role("GET", path)


def test_host_routing_puts_the_function_in_front() -> None:
    assert gateway_path("catalog.localhost:8080", "/images/1", FUNCTIONS) == "/catalog/images/1"
    assert gateway_path("dead-letters.datafrost.example.com", "/", FUNCTIONS) == "/dead-letters/"
    assert gateway_path("127.0.0.1:8080", "/catalog/images", FUNCTIONS) == "/catalog/images"
    assert gateway_path("localhost", "/upload", FUNCTIONS) == "/upload"
    assert gateway_path("unknown.localhost", "/x", FUNCTIONS) == "/x"
    assert gateway_path("[::1]:8080", "/x", FUNCTIONS) == "/x"
    assert gateway_path(None, "/x", FUNCTIONS) == "/x"
    assert host_function("catalog.datafrost.example.com:443", FUNCTIONS) == "catalog"
    assert host_function("catalog", FUNCTIONS) is None  # no dot: a bare name is not host routing
    assert host_function("evil-catalog.example.com", FUNCTIONS) is None
    assert required_role("DELETE", gateway_path("catalog.localhost", "/images/1", FUNCTIONS)) == "editor"
