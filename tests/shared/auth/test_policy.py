"""The route policy's mechanics: matching, path normalisation and host routing (the table itself is
the registry's: tests/functions/test_registry.py)."""

from __future__ import annotations

import pytest

from shared.auth.policy import NoRoute, RefusedPath, RoutePolicy, gateway_path, host_function

FUNCTIONS = frozenset({"catalog", "upload", "dead-letters", "authz", "storage-events", "inspect"})
POLICY = RoutePolicy(
    [
        (("GET",), "/healthz", "public"),
        (("GET", "DELETE"), "/catalog/images/<image_id>", "viewer"),
        (("POST",), "/upload/", "editor"),
        (("POST",), "/upload/presign", "editor"),
        (("GET",), "/dead-letters/", "admin"),
        (("PUT",), "/upload/put/<path:key>", "public"),
    ]
)


def required_role(method: str, path: str) -> str:
    return POLICY.lookup(method, path)


def test_a_rule_matches_its_methods_and_pattern_and_nothing_else() -> None:
    assert required_role("GET", "/catalog/images/abc") == "viewer"
    assert required_role("HEAD", "/catalog/images/abc") == "viewer"  # HEAD goes with GET
    assert required_role("PUT", "/upload/put/alice/a b.jpg") == "public"
    for method, path in [("GET", "/catalog/images/a/b"), ("GET", "/nope")]:
        with pytest.raises(NoRoute, match="no route for") as refused:
            required_role(method, path)
        assert refused.value.allowed == ()
    with pytest.raises(NoRoute, match="PUT is not allowed") as wrong_method:
        required_role("PUT", "/catalog/images/abc")
    assert wrong_method.value.allowed == ("DELETE", "GET", "HEAD")


@pytest.mark.parametrize("path", ["//dead-letters//", "/upload//presign", "//healthz"])
def test_paths_with_empty_segments_are_refused_not_merged(path: str) -> None:
    """Merging `//` is one reading among several (servers differ): such a path is refused instead."""
    with pytest.raises(RefusedPath, match="empty path segments"):
        required_role("GET", path)
    assert required_role("post", "/upload/presign") == "editor"  # the canonical spelling matches


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
    assert required_role("DELETE", gateway_path("catalog.localhost", "/images/1", FUNCTIONS)) == "viewer"
