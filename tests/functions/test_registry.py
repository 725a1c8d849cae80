"""The registry: the gateway's route table built from every spec, row by row, and what loading refuses."""

from __future__ import annotations

from dataclasses import replace

import pytest

from functions import registry
from functions.registry import RegistryError, all_specs, check, gateway_policy, served_by
from functions.spec import PUBLIC, FunctionSpec, Serves, route
from shared.auth.policy import NoRoute

NO_ROUTE = "no route"


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", "/healthz", PUBLIC),
        ("HEAD", "/healthz", PUBLIC),
        ("GET", "/catalog/healthz", PUBLIC),
        ("GET", "/inspect/readyz", PUBLIC),
        ("GET", "/inspect/metrics", "service"),
        ("GET", "/authz/realms/datafrost/.well-known/openid-configuration", PUBLIC),
        ("GET", "/authz/realms/datafrost/protocol/openid-connect/certs", PUBLIC),
        ("POST", "/authz/realms/datafrost/protocol/openid-connect/token", PUBLIC),
        ("POST", "/authz/dev/token", PUBLIC),
        ("GET", "/authz/check/catalog/images", PUBLIC),
        ("POST", "/storage-events/", PUBLIC),
        ("POST", "/storage-events", PUBLIC),
        ("HEAD", "/storage-events/", PUBLIC),
        ("POST", "/storage-events/rabbitmq", "service"),
        ("PUT", "/upload/put/alice/a b.jpg", PUBLIC),
        ("POST", "/upload", "editor"),
        ("POST", "/upload/", "editor"),
        ("POST", "/upload/presign", "editor"),
        ("GET", "/catalog/images", "viewer"),
        ("GET", "/catalog/images/abc/variants/thumb", "viewer"),
        ("HEAD", "/catalog/images/abc", "viewer"),
        ("DELETE", "/catalog/images/abc", "editor"),
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
        ("GET", "/event-display/events", "viewer"),
        ("POST", "/event-display/", "service"),
        ("POST", "/catalog/", "service"),
        ("POST", "/catalog", "service"),
        ("POST", "/inspect/", "service"),
        ("GET", "/metrics", "viewer"),
        ("GET", "/functions", "viewer"),
        # nothing declares these: refused at the edge, whatever the token
        ("GET", "/storage-events/rabbitmq", NO_ROUTE),
        ("POST", "/healthz", NO_ROUTE),
        ("DELETE", "/authz/realms/datafrost/protocol/openid-connect/certs", NO_ROUTE),
        ("GET", "/upload/", NO_ROUTE),
        ("PUT", "/catalog/images/abc", NO_ROUTE),
        ("POST", "/catalog/images", NO_ROUTE),
        ("GET", "/", NO_ROUTE),
        ("PATCH", "/anything/else", NO_ROUTE),
        ("GET", "/no-such-function/", NO_ROUTE),
    ],
)
def test_the_gateway_policy_row_by_row(method: str, path: str, role: str) -> None:
    if role == NO_ROUTE:
        with pytest.raises(NoRoute):
            gateway_policy().lookup(method, path)
    else:
        assert gateway_policy().lookup(method, path).role == role


def test_every_route_of_every_function_is_in_the_policy_with_its_own_role() -> None:
    for spec in all_specs():
        for r in spec.all_routes:
            path = registry.on_gateway(
                spec.name, r.path.replace("<path:", "<").replace("<", "x").replace(">", "")
            )
            for method in r.methods:
                assert gateway_policy().lookup(method, path).role == r.role, (spec.name, method, r.path)


def test_every_platform_part_is_played_once() -> None:
    assert {part: served_by(part)[0].name for part in Serves} == {
        Serves.EXT_AUTHZ: "authz",
        Serves.STORAGE_WEBHOOK: "storage-events",
        Serves.STORAGE_AMQP: "storage-events",
        Serves.TOKEN_ISSUER: "authz",
    }
    assert registry.dead_letter_sink() is not None and registry.dead_letter_sink().name == "dead-letters"


def test_a_route_without_a_valid_role_is_refused_as_the_spec_is_built() -> None:
    with pytest.raises(ValueError, match="needs a role"):
        route("GET", "/x", "", lambda call: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="needs a role"):
        route("GET", "/x", "superuser", lambda call: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="twice"):
        FunctionSpec(
            name="twice",
            description="t",
            routes=(route("GET", "/a", PUBLIC, lambda c: None), route("GET", "/a", "viewer", lambda c: None)),  # type: ignore[arg-type,return-value]
        )


def test_loading_refuses_contradictions() -> None:
    specs = all_specs()
    with pytest.raises(RegistryError, match="declared twice"):
        check((*specs, specs[0]))
    with pytest.raises(RegistryError, match="gateway's own paths"):
        check((*specs, FunctionSpec(name="metrics", description="clashes with GET /metrics")))
    authz = next(s for s in specs if s.name == "authz")
    with pytest.raises(RegistryError, match="ext-authz is served by more than one"):
        check((*specs, replace(authz, name="authz-two")))
    sink = next(s for s in specs if s.dead_letter_sink)
    with pytest.raises(RegistryError, match="more than one dead-letter sink"):
        check((*specs, replace(sink, name="more-letters")))
