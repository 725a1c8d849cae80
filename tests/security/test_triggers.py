"""Triggers are bounded and cannot loop (security hardening items 7 and 8), through `datafrost dev`.

Item 7: every trigger field is bounded (parallelism 1 to 1000 as eventing-rabbitmq's parallelism
annotation; retry, timeout and backoff capped, see `eventing.trigger`); a bad value is a 400 naming the
field and its bound, a trigger that fails to start leaves nothing behind, and a stored trigger that is
invalid now is reported at start instead of stopping the platform.

Item 8: the broker's loop guard is Knative's `knativebrokerttl` (knative/eventing pkg/broker/ttl.go
`TTLDefaulter`: 255 for an event without it, else decremented; pkg/broker/ingress/ingress_handler.go
answers 400 and drops an event whose TTL is then <= 0; pkg/broker/filter/filter_handler.go gives a
reply the TTL of the event it answers). Sinks at this platform's own gateway (other than a function),
link-local and cloud metadata addresses, and URLs with credentials are refused.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
import urllib3
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.wrappers import Response

from eventing.cloudevent import CloudEvent, new_event
from eventing.http_codec import to_binary
from functions.registry import all_specs
from localplatform.broker.rabbitmq import Topology
from localplatform.processes import free_port
from tests.support.brokers import delete_platform_broker
from tests.support.platform import DevProcess
from tests.support.services import AMQP_URL, require_service
from tests.support.sink import Sink, status

TRIGGERS = "/brokers/default/triggers"
INGRESS = "/brokers/default"
TYPE = "io.datafrost.test.loop"
DROPPED = "datafrost_broker_events_dropped_total"


# -- fixtures and helpers ---------------------------------------------------------------------------
class Platform:
    """A running `datafrost dev` and what the tests need to know of it."""

    def __init__(self, dev: DevProcess, broker_name: str = "default") -> None:
        self.dev = dev
        self.broker_name = broker_name
        self.internal_port = int((dev.data_dir / "internal-port").read_text())

    def create(self, body: dict[str, Any]) -> tuple[int, Any]:
        return self.dev.json("POST", TRIGGERS, body)

    def trigger_names(self) -> list[str]:
        status_code, body = self.dev.json("GET", TRIGGERS)
        assert status_code == 200, body
        return [t["name"] for t in body["triggers"]]

    def publish(self, event: CloudEvent) -> urllib3.BaseHTTPResponse:
        headers, body = to_binary(event)
        return self.dev.request("POST", INGRESS, headers=headers, body=body)

    def dropped(self) -> float:
        """Events the broker's loop guard dropped, from the gateway's /metrics."""
        text = self.dev.request("GET", "/metrics").data.decode()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == DROPPED and s.labels.get("reason") == "ttl_expired":
                    return s.value
        return 0.0

    def wait_dropped(self, count: float) -> None:
        deadline = time.monotonic() + 60
        while self.dropped() < count:
            assert time.monotonic() < deadline, f"the loop guard never dropped {count} event(s)"
            time.sleep(0.05)


def trigger(name: str, subscriber: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "subscriber": subscriber, "filter": {"type": TYPE}, **fields}


def delete_rabbitmq_broker(name: str, trigger_names: list[str]) -> None:
    """Remove a test broker's exchanges and queues (the registry's triggers' and the test's own)."""
    delete_platform_broker(AMQP_URL, name, trigger_names)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One platform for the tests that only create (or fail to create) triggers with names of their own."""
    dev = DevProcess(tmp_path_factory.mktemp("security") / "data").start()
    try:
        yield Platform(dev)
    finally:
        dev.stop()


@pytest.fixture(params=["local", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def any_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    """The platform on the default (durable local) broker, and on RabbitMQ with a broker of its own
    (deleted after)."""
    if request.param == "local":
        dev = DevProcess(tmp_path / "data").start()
        try:
            yield Platform(dev)
        finally:
            dev.stop()
        return
    amqp_url = require_service("amqp", AMQP_URL, 5672)
    name = f"sec-{uuid.uuid4().hex[:8]}"
    dev = DevProcess(tmp_path / "data", "--broker", amqp_url, env={"DATAFROST_BROKER_NAME": name})
    try:
        dev.start()
        platform = Platform(dev, name)
        yield platform
    finally:
        dev.stop()
        delete_rabbitmq_broker(name, ["loop", "repost"])


# -- item 8: sinks that point back at the platform, at metadata, or carry credentials ----------------
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{public}/brokers/default",
        "http://localhost:{public}/brokers/default/",
        "http://LOCALHOST.:{public}/brokers/default",
        "http://[::1]:{public}/brokers/default",
        "http://0.0.0.0:{public}/brokers/default",
        "http://2130706433:{public}/brokers/default",  # 127.0.0.1 as one number
        "http://127.0.0.1:{public}/brokers/%64efault",  # the gateway decodes the path
        "http://127.0.0.1:{internal}/brokers/default",  # the internal (cluster-local) listener
        "http://localhost:{internal}/brokers/default",
    ],
)
@pytest.mark.parametrize("field", ["subscriber", "dead_letter_sink"])
def test_a_sink_at_the_platforms_own_broker_ingress_is_refused(
    platform: Platform, url: str, field: str
) -> None:
    sink = url.format(public=platform.dev.port, internal=platform.internal_port)
    body = trigger("to-ingress", sink)
    if field == "dead_letter_sink":
        body = trigger("to-ingress", "http://127.0.0.1:9/", delivery={"dead_letter_sink": sink})
    status_code, answer = platform.create(body)
    assert status_code == 400, answer
    where = "subscriber" if field == "subscriber" else "delivery.dead_letter_sink"
    assert answer["error"] == (
        f"invalid trigger: {where} is this platform's own broker ingress: every event sent there would "
        "come back (a loop)"
    )
    assert "to-ingress" not in platform.trigger_names()


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/brokers/default/triggers", "/brokers/default/triggers"),  # no token is checked there
        ("/functions", "/functions"),
        ("/metrics", "/metrics"),
        ("/no-such-function/", "/no-such-function/"),
    ],
)
def test_a_sink_at_the_gateways_own_routes_is_refused(platform: Platform, path: str, shown: str) -> None:
    status_code, answer = platform.create(
        trigger("to-gateway", f"http://127.0.0.1:{platform.internal_port}{path}")
    )
    assert status_code == 400, answer
    assert answer["error"] == (
        f"invalid trigger: subscriber is this platform's own gateway ({shown}), not one of its functions"
    )


def test_a_sink_at_one_of_the_platforms_functions_is_allowed(platform: Platform) -> None:
    """The registry's own triggers do this; so may an extra one (public or internal listener)."""
    bases = {"on-public": platform.dev.url, "on-internal": f"http://127.0.0.1:{platform.internal_port}"}
    try:
        for name, base in bases.items():
            body = trigger(
                name, f"{base}/event-display/", delivery={"dead_letter_sink": f"{base}/dead-letters/"}
            )
            status_code, answer = platform.create(body)
            assert status_code == 201, answer
        assert set(bases) <= set(platform.trigger_names())
    finally:
        for name in bases:
            platform.dev.request("DELETE", f"{TRIGGERS}/{name}")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "is a cloud metadata address (169.254.169.254)"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "is a cloud metadata address (fd00:ec2::254)"),
        ("http://metadata.google.internal/computeMetadata/v1/", "is a cloud metadata address"),
        ("http://Metadata.Google.Internal./", "is a cloud metadata address (metadata.google.internal)"),
        ("http://2852039166/", "is a cloud metadata address (169.254.169.254)"),  # one number
        ("http://0xa9.0xfe.0xa9.0xfe/", "is a cloud metadata address (169.254.169.254)"),
        ("http://[::ffff:169.254.169.254]/", "is a cloud metadata address (169.254.169.254)"),
        ("http://169.254.10.1:8080/hook", "is a link-local address (169.254.10.1)"),
        ("http://[fe80::1]:8080/hook", "is a link-local address (fe80::1)"),
        ("http://alice:s3cret@127.0.0.1:9/hook", "must not carry credentials (user:password@)"),
        ("http://token@127.0.0.1:9/hook", "must not carry credentials (user:password@)"),
        ("ftp://127.0.0.1/hook", "must be an http:// or https:// URL, not ftp"),
        ("file:///etc/passwd", "must be an http:// or https:// URL, not file"),
        ("http:///hook", "has no host"),
        ("http://127.0.0.1:99999/", "Port out of range"),
        ("http://127.0.0.1:9/a b", "contains a space, a backslash or a control character"),
        ("http://127.0.0.1:9\\@169.254.169.254/", "contains a space, a backslash or a control character"),
        ("http://127.0.0.1:9/" + "a" * 3000, "is 3019 characters long, over the limit of 2048"),
    ],
)
@pytest.mark.parametrize("field", ["subscriber", "dead_letter_sink"])
def test_metadata_link_local_credentials_and_other_schemes_are_refused(
    platform: Platform, url: str, reason: str, field: str
) -> None:
    body = trigger("bad-sink", url)
    if field == "dead_letter_sink":
        body = trigger("bad-sink", "http://127.0.0.1:9/", delivery={"dead_letter_sink": url})
    status_code, answer = platform.create(body)
    assert status_code == 400, answer
    where = "subscriber" if field == "subscriber" else "delivery.dead_letter_sink"
    assert answer["error"].startswith(f"invalid trigger: {where} ")
    assert reason in answer["error"]
    assert "s3cret" not in answer["error"]  # a refused URL is never repeated: it may hold a password
    assert "bad-sink" not in platform.trigger_names()


# -- item 8: the loop guard --------------------------------------------------------------------------
def test_an_event_arriving_with_ttl_1_is_dropped_at_the_ingress(any_broker: Platform) -> None:
    """Knative's ingress decrements first: 1 becomes 0, and the event is refused with 400."""
    event = new_event(TYPE, "/tests/security", {"n": 1}, extensions={"knativebrokerttl": "1"})
    answer = any_broker.publish(event)
    assert answer.status == 400
    assert json.loads(answer.data)["error"] == (
        f"event {event.id} dropped: its knativebrokerttl reached 0, it has passed through the broker as "
        "often as it may (an event loop?)"
    )
    assert any_broker.dropped() == 1
    logged = [line for line in any_broker.dev.logs() if line.get("event_id") == event.id]
    assert [line["level"] for line in logged] == ["warning"]
    assert "knativebrokerttl reached 0" in logged[0]["message"]


def test_a_reply_loop_ends_when_the_ttl_runs_out(any_broker: Platform, sink: Sink) -> None:
    """A subscriber that answers every event with another of the same type: each reply re-enters the
    broker with the TTL of the event it answers (the subscriber's own value is ignored), one less each
    pass. Published with TTL 3: delivered with 2, then 1, and the next reply is dropped."""

    def reply_in_kind(event: CloudEvent, n: int) -> Response:
        reply = new_event(TYPE, "/tests/replier", {"n": n}, extensions={"knativebrokerttl": "255"})
        headers, body = to_binary(reply)
        return Response(body, status=200, headers=headers)

    sink.answer = reply_in_kind
    status_code, answer = any_broker.create(trigger("loop", sink.url))
    assert status_code == 201, answer
    sent = any_broker.publish(
        new_event(TYPE, "/tests/security", {"n": 0}, extensions={"knativebrokerttl": "3"})
    )
    assert sent.status == 202

    any_broker.wait_dropped(1)
    assert [r.event.get("knativebrokerttl") for r in sink.received] == ["2", "1"]
    assert any_broker.dev.request("DELETE", f"{TRIGGERS}/loop").status == 204


def test_a_sink_that_posts_each_event_back_to_the_ingress_stops_after_255_passes(
    any_broker: Platform, sink: Sink
) -> None:
    """The reported loop (one event delivered 58,380 times in 15 s): a sink that hands every event back
    to the broker ingress, as a sink at the ingress itself (refused above) or any proxy in front of it
    would. The event keeps its TTL on delivery, so the ingress counts it down: 255 deliveries, then the
    ingress refuses it and nothing more arrives."""
    reposted: list[int] = []
    lock = threading.Lock()

    def post_back(event: CloudEvent, n: int) -> Response:
        answer = any_broker.publish(event)
        with lock:
            reposted.append(answer.status)
        return status(204)

    sink.answer = post_back
    status_code, answer = any_broker.create(trigger("repost", sink.url))
    assert status_code == 201, answer
    first = new_event(TYPE, "/tests/security", {"n": 0})
    assert any_broker.publish(first).status == 202

    any_broker.wait_dropped(1)
    ttls = [int(r.event.get("knativebrokerttl") or 0) for r in sink.received]
    assert ttls == list(range(255, 0, -1))
    assert {r.event.id for r in sink.received} == {first.id}
    assert reposted == [202] * 254 + [400]
    assert any_broker.dev.request("DELETE", f"{TRIGGERS}/repost").status == 204


# -- item 7: bounded fields ---------------------------------------------------------------------------
BAD_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("parallelism-0", {"parallelism": 0}, "parallelism must be an integer from 1 to 1000, got 0"),
    ("parallelism-1001", {"parallelism": 1001}, "parallelism must be an integer from 1 to 1000, got 1001"),
    (
        "parallelism-huge",
        {"parallelism": 100000},
        "parallelism must be an integer from 1 to 1000, got 100000",
    ),
    ("parallelism-text", {"parallelism": "5"}, "parallelism must be an integer from 1 to 1000, got '5'"),
    ("parallelism-bool", {"parallelism": True}, "parallelism must be an integer from 1 to 1000, got True"),
    ("parallelism-float", {"parallelism": 2.5}, "parallelism must be an integer from 1 to 1000, got 2.5"),
    (
        "retry-negative",
        {"delivery": {"retry": -1}},
        "delivery.retry must be an integer from 0 to 100, got -1",
    ),
    (
        "retry-huge",
        {"delivery": {"retry": 10**20}},
        f"delivery.retry must be an integer from 0 to 100, got {10**20}",
    ),
    ("retry-text", {"delivery": {"retry": "3"}}, "delivery.retry must be an integer from 0 to 100, got '3'"),
    ("timeout-zero", {"delivery": {"timeout": "PT0S"}}, "delivery.timeout must be a duration more than 0"),
    (
        "timeout-huge",
        {"delivery": {"timeout": "P99999999D"}},
        "delivery.timeout must be a duration more than 0 to PT600S, got 8.64e+12 seconds",
    ),
    (
        "timeout-number",
        {"delivery": {"timeout": 1e308}},
        "delivery.timeout must be a duration more than 0 to PT600S, got 1e+308 seconds",
    ),
    ("timeout-text", {"delivery": {"timeout": "soon"}}, "delivery.timeout: not an ISO 8601 duration: 'soon'"),
    (
        "backoff-huge",
        {"delivery": {"backoff_delay": "PT2H"}},
        "delivery.backoff_delay must be a duration from 0 to PT3600S, got 7200 seconds",
    ),
    (
        "backoff-negative",
        {"delivery": {"backoff_delay": -1}},
        "delivery.backoff_delay must be a duration from 0 to PT3600S, got -1 seconds",
    ),
    (
        "backoff-policy",
        {"delivery": {"backoff_policy": "random"}},
        "delivery.backoff_policy must be exponential or linear, got 'random'",
    ),
    ("delivery-unknown", {"delivery": {"retries": 3}}, "unknown delivery field(s): retries"),
    ("delivery-not-object", {"delivery": [1]}, "delivery must be an object"),
    ("field-unknown", {"parallelsim": 4}, "unknown trigger field(s): parallelsim"),
    (
        "filter-upper-case",
        {"filter": {"Type": TYPE}},
        "filter attribute 'Type' must be a CloudEvents attribute name: lower-case letters a-z and "
        "digits 0-9, at most 20 characters",
    ),
    ("filter-long-name", {"filter": {"a" * 21: "x"}}, "filter attribute 'aaaaaaaaaaaaaaaaaaaaa' must be"),
    ("filter-not-string", {"filter": {"type": 5}}, "filter value of type must be a string, got int"),
    (
        "filter-long-value",
        {"filter": {"type": "x" * 4097}},
        "filter value of type is 4097 characters long, over the limit of 4096",
    ),
    ("filter-control", {"filter": {"type": "a\nb"}}, "filter value of type contains a control character"),
    (
        "filter-many",
        {"filter": {f"a{i}": "x" for i in range(21)}},
        "filter has 21 attributes, over the limit of 20",
    ),
    ("filter-not-object", {"filter": ["type"]}, "filter must be an object of attribute names to values"),
]


@pytest.mark.parametrize(("case", "change", "message"), BAD_FIELDS, ids=[c[0] for c in BAD_FIELDS])
def test_each_bad_field_is_a_400_naming_the_field_and_its_bound(
    platform: Platform, case: str, change: dict[str, Any], message: str
) -> None:
    body = {**trigger("bounded", "http://127.0.0.1:9/"), **change}
    status_code, answer = platform.create(body)
    assert status_code == 400, answer
    assert answer["error"].startswith(f"invalid trigger: {message}"), answer
    assert "bounded" not in platform.trigger_names()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Bad_Name", "trigger name 'Bad_Name' must be a DNS label"),
        ("a" * 64, "must be a DNS label (a-z, 0-9, '-', at most 63 characters"),
        ("-leading", "trigger name '-leading' must be a DNS label"),
        (123, "trigger name 123 must be a DNS label"),
    ],
)
def test_a_name_that_is_not_a_dns_label_is_a_400(platform: Platform, name: object, message: str) -> None:
    status_code, answer = platform.create({"name": name, "subscriber": "http://127.0.0.1:9/"})
    assert status_code == 400, answer
    assert message in answer["error"]


def test_a_body_that_is_not_one_bounded_trigger_is_refused(platform: Platform) -> None:
    oversized = platform.dev.request(
        "POST",
        TRIGGERS,
        body=b'{"name": "' + b"a" * 70000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert oversized.status == 413
    assert json.loads(oversized.data) == {
        "error": "request body of 70012 bytes is over the limit of 65536 bytes"
    }
    status_code, answer = platform.dev.json("POST", TRIGGERS, [trigger("listed", "http://127.0.0.1:9/")])
    assert (status_code, answer) == (400, {"error": "invalid trigger: a trigger must be a JSON object"})
    nested = platform.dev.request(
        "POST", TRIGGERS, body=b"[" * 30000 + b"]" * 30000, headers={"Content-Type": "application/json"}
    )
    assert nested.status == 400
    assert json.loads(nested.data) == {"error": "invalid trigger: JSON nested more than 64 levels deep"}


def test_huge_parallelism_is_a_400_and_the_platform_still_works(platform: Platform, sink: Sink) -> None:
    status_code, answer = platform.create(trigger("wide", sink.url, parallelism=100000))
    assert (status_code, answer) == (
        400,
        {"error": "invalid trigger: parallelism must be an integer from 1 to 1000, got 100000"},
    )
    assert "wide" not in platform.trigger_names()
    # the bound itself is allowed, and a trigger created after it delivers
    try:
        status_code, answer = platform.create(trigger("widest", "http://127.0.0.1:9/", parallelism=1000))
        assert status_code == 201, answer
        assert platform.dev.request("DELETE", f"{TRIGGERS}/widest").status == 204
        status_code, answer = platform.create(trigger("after", sink.url))
        assert status_code == 201, answer
        event = new_event(TYPE, "/tests/security", {"n": 1})
        assert platform.publish(event).status == 202
        (received,) = sink.wait_for(1)
        assert received.event.id == event.id
    finally:
        for name in ("widest", "after"):
            platform.dev.request("DELETE", f"{TRIGGERS}/{name}")


@pytest.mark.rabbitmq
def test_a_trigger_that_fails_to_start_leaves_nothing_behind(tmp_path: Path, sink: Sink) -> None:
    """RabbitMQ refuses the trigger's queue (one of that name exists with other arguments): the create
    answers 503 with the reason, nothing of the trigger is kept, deleting it is a plain 404, and the
    platform goes on creating and running triggers."""
    amqp_url = require_service("amqp", AMQP_URL, 5672)
    name = f"sec-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    connection.channel().queue_declare(Topology(name).queue("clash"), durable=True)  # no dead-letter exchange
    connection.close()
    dev = DevProcess(tmp_path / "data", "--broker", amqp_url, env={"DATAFROST_BROKER_NAME": name})
    try:
        dev.start()
        platform = Platform(dev, name)
        status_code, answer = platform.create(trigger("clash", sink.url))
        assert status_code == 503, answer
        assert answer["error"].startswith("trigger clash could not be started: ")
        assert "PRECONDITION_FAILED" in answer["error"]
        assert "clash" not in platform.trigger_names()
        assert dev.json("GET", f"{TRIGGERS}/clash") == (404, {"error": "no trigger clash"})
        assert dev.json("DELETE", f"{TRIGGERS}/clash") == (404, {"error": "no trigger clash"})
        stored = json.loads((dev.data_dir / "triggers.json").read_text())["triggers"]
        assert [t["name"] for t in stored] == []

        status_code, answer = platform.create(trigger("fine", sink.url))
        assert status_code == 201, answer
        event = new_event(TYPE, "/tests/security", {"n": 1})
        assert platform.publish(event).status == 202
        assert [r.event.id for r in sink.wait_for(1)] == [event.id]
        assert dev.request("DELETE", f"{TRIGGERS}/fine").status == 204
    finally:
        dev.stop()
        delete_rabbitmq_broker(name, ["clash", "fine"])


def test_invalid_stored_triggers_are_reported_at_start_and_can_be_deleted(tmp_path: Path, sink: Sink) -> None:
    """A data dir from before the bounds: the platform starts, says which stored triggers it left out
    and why, runs the valid one, and `datafrost trigger delete` removes the others."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    internal_port = free_port()
    (data_dir / "internal-port").write_text(str(internal_port))  # the port the platform will use
    stored: list[Any] = [
        trigger("valid", sink.url),
        trigger("too-wide", sink.url, parallelism=100000),
        trigger("to-metadata", "http://169.254.169.254/latest/"),
        trigger("to-ingress", f"http://127.0.0.1:{internal_port}/brokers/default"),
        trigger("slow", sink.url, delivery={"timeout": "P365D"}),
        "not a trigger",
    ]
    (data_dir / "triggers.json").write_text(json.dumps({"triggers": stored}))
    dev = DevProcess(data_dir).start()
    try:
        platform = Platform(dev)
        assert platform.internal_port == internal_port
        assert "valid" in platform.trigger_names()
        assert not {"too-wide", "to-metadata", "to-ingress", "slow"} & set(platform.trigger_names())
        errors = {line["message"] for line in dev.logs() if line.get("level") == "error"}
        triggers_file = data_dir / "triggers.json"
        for name, reason in (
            ("too-wide", "parallelism must be an integer from 1 to 1000, got 100000"),
            ("to-metadata", "subscriber is a cloud metadata address (169.254.169.254)"),
            ("to-ingress", "subscriber is this platform's own broker ingress"),
            ("slow", "delivery.timeout must be a duration more than 0 to PT600S"),
            ("#6", "a trigger must be a JSON object"),
        ):
            expected = f"stored trigger {name} in {triggers_file} was not started: {reason}"
            assert any(message.startswith(expected) for message in errors), (expected, errors)

        event = new_event(TYPE, "/tests/security", {"n": 1})
        assert platform.publish(event).status == 202
        assert [r.event.id for r in sink.wait_for(1)] == [event.id]
        for name in ("too-wide", "to-metadata", "to-ingress", "slow"):
            deleted = dev.cli("trigger", "delete", name)
            assert deleted.returncode == 0, deleted.stderr
        left = json.loads(triggers_file.read_text())["triggers"]
        assert [t if isinstance(t, str) else t["name"] for t in left] == ["valid", "not a trigger"]
    finally:
        dev.stop()


# -- the CLI ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--parallelism", "100000"], "parallelism must be an integer from 1 to 1000, got 100000"),
        (["--retry", "1000"], "delivery.retry must be an integer from 0 to 100, got 1000"),
        (
            ["--timeout", "PT1H"],
            "delivery.timeout must be a duration more than 0 to PT600S, got 3600 seconds",
        ),
        (["--backoff-delay", "P1D"], "delivery.backoff_delay must be a duration from 0 to PT3600S"),
        (["--filter", "Type=x"], "filter attribute 'Type' must be a CloudEvents attribute name"),
        (["--dead-letter-sink", "http://alice:s3cret@127.0.0.1:9/"], "must not carry credentials"),
        (["--retry", "many"], "argument --retry: invalid int value: 'many'"),
    ],
)
def test_cli_refuses_bad_values_in_one_line(
    platform: Platform, sink: Sink, args: list[str], message: str
) -> None:
    result = platform.dev.cli("trigger", "create", "from-cli", "--sink", sink.url, *args)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert "s3cret" not in result.stderr
    assert "from-cli" not in platform.trigger_names()


@pytest.mark.parametrize(
    "sink_of",
    [
        lambda p: f"http://127.0.0.1:{p.dev.port}/brokers/default",
        lambda p: "http://169.254.169.254/",
    ],
    ids=["own-ingress", "metadata"],
)
def test_cli_refuses_a_sink_that_is_not_allowed_in_one_line(
    platform: Platform, sink_of: Callable[[Platform], str]
) -> None:
    result = platform.dev.cli("trigger", "create", "from-cli", "--sink", sink_of(platform))
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("datafrost: error: server answered 400: invalid trigger: subscriber is ")


# -- siblings: the same unbounded inputs elsewhere on the broker's path -------------------------------
def test_the_triggers_together_have_a_bounded_number_of_delivery_workers(tmp_path: Path, sink: Sink) -> None:
    """Parallelism 1000 is allowed, but not as many of them as it takes to use up the process's threads
    (the 21,922 threads of one parallelism-100000 trigger, in 22 triggers): 4000 workers in all, then
    409 with the reason; nothing of the refused trigger is kept, and the platform goes on."""
    dev = DevProcess(tmp_path / "data").start()
    try:
        platform = Platform(dev)
        for name in ("wide-1", "wide-2", "wide-3"):
            status_code, answer = platform.create(trigger(name, "http://127.0.0.1:9/", parallelism=1000))
            assert status_code == 201, answer
        status_code, answer = platform.create(trigger("wide-4", "http://127.0.0.1:9/", parallelism=1000))
        registry = sum(t.parallelism for s in all_specs() for t in s.triggers)
        assert (status_code, answer) == (
            409,
            {
                "error": "trigger wide-4 needs 1000 delivery workers (its parallelism), but the triggers "
                f"together may have 4000 and {3000 + registry} are taken"
            },
        )
        assert "wide-4" not in platform.trigger_names()
        assert "wide-4" not in (dev.data_dir / "triggers.json").read_text()
        assert dev.request("DELETE", f"{TRIGGERS}/wide-3").status == 204
        status_code, answer = platform.create(trigger("after", sink.url))
        assert status_code == 201, answer
        event = new_event(TYPE, "/tests/security", {"n": 1})
        assert platform.publish(event).status == 202
        assert [r.event.id for r in sink.wait_for(1)] == [event.id]
    finally:
        dev.stop()


def test_a_reply_over_the_brokers_event_size_limit_is_not_published(
    platform: Platform, make_sinks: Any
) -> None:
    """A reply enters the broker as an event from the ingress would: no larger than its limit. A
    subscriber answering with more is read no further than that, and its reply is dropped (logged); the
    next, small reply is published as usual."""
    replier, replies = make_sinks(2)
    limit = 1024 * 1024
    reply_type = "io.datafrost.test.reply"

    def answer(event: CloudEvent, n: int) -> Response:
        size = limit + 1 if event.json()["n"] == 0 else 10
        reply = new_event(reply_type, "/tests/replier", b"y" * size, id=f"reply-{event.json()['n']}")
        headers, body = to_binary(reply)
        return Response(body, status=200, headers=headers)

    replier.answer = answer
    try:
        for name, url, type_ in (("replier", replier.url, TYPE), ("replies", replies.url, reply_type)):
            status_code, body = platform.create({"name": name, "subscriber": url, "filter": {"type": type_}})
            assert status_code == 201, body
        for n in (0, 1):
            assert platform.publish(new_event(TYPE, "/tests/security", {"n": n})).status == 202
        (published,) = replies.wait_for(1)
        assert published.event.id == "reply-1"
        replier.wait_for(2)
        assert [r.event.id for r in replies.received] == ["reply-1"]
        ignored = [
            line
            for line in platform.dev.logs()
            if "not a CloudEvent; ignored" in line.get("message", "") and "over the limit" in line["message"]
        ]
        assert len(ignored) == 1
    finally:
        for name in ("replier", "replies"):
            platform.dev.request("DELETE", f"{TRIGGERS}/{name}")


@pytest.fixture
def make_sinks() -> Iterator[Callable[[int], list[Sink]]]:
    made: list[Sink] = []

    def make(count: int) -> list[Sink]:
        made.extend(Sink() for _ in range(count))
        return made[-count:]

    yield make
    for s in made:
        s.close()


def test_json_nested_too_deeply_is_a_400_at_the_ingress_and_no_500_at_a_function(platform: Platform) -> None:
    """Python's JSON parser gives up on deep nesting with a RecursionError, which the ingress answered
    with a 500 (and a function with a 500, so the broker retried a poison event)."""
    structured = b'{"specversion": "1.0", "id": "deep", "source": "s", "type": "t", "data": '
    structured += b"[" * 30000 + b"]" * 30000 + b"}"
    answer = platform.dev.request(
        "POST", INGRESS, body=structured, headers={"Content-Type": "application/cloudevents+json"}
    )
    assert answer.status == 400
    assert json.loads(answer.data) == {
        "error": "invalid CloudEvent: body is not valid JSON: JSON nested more than 64 levels deep"
    }

    deep = new_event(TYPE, "/tests/security", b'{"a":' * 20000 + b"1" + b"}" * 20000, id="deep-data")
    headers, body = to_binary(deep)
    assert platform.dev.request("POST", "/event-display/", headers=headers, body=body).status == 204
