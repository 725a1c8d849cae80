"""No loss with RabbitMQ: the runner is SIGKILLed mid-delivery and every accepted event still arrives."""

from __future__ import annotations

import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from eventing.cloudevent import new_event
from eventing.http_codec import to_binary
from tests.support.brokers import delete_platform_broker
from tests.support.platform import DevProcess
from tests.support.sink import Sink, status

pytestmark = pytest.mark.rabbitmq
EVENTS = 2000


def test_sigkill_mid_delivery_loses_nothing(tmp_path: Path, sink: Sink, amqp_url: str) -> None:
    broker_name = f"noloss-{uuid.uuid4().hex[:8]}"
    env = {"DATAFROST_BROKER_NAME": broker_name}
    data_dir = tmp_path / "data"

    def slow_ok(event: object, n: int) -> object:
        time.sleep(0.002)
        return status(204)

    sink.answer = slow_ok  # type: ignore[assignment]
    first = DevProcess(data_dir, "--broker", amqp_url, env=env)
    try:
        first.start()  # inside: a start that fails half-way still has its queues deleted
        created = first.cli(
            "trigger", "create", "to-sink", "--filter", "type=io.test.noloss", "--sink", sink.url
        )
        assert created.returncode == 0, created.stderr
        ids = [f"noloss-{i}" for i in range(EVENTS)]

        def post(event_id: str) -> int:
            headers, body = to_binary(new_event("io.test.noloss", "tests", {"id": event_id}, id=event_id))
            return first.request("POST", "/brokers/default", headers=headers, body=body).status

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(post, ids))
        assert statuses == [202] * EVENTS

        while len(set(sink.ids())) < 200:
            time.sleep(0.01)
        first.stop(signal.SIGKILL)
        delivered_before_kill = len(set(sink.ids()))
        assert delivered_before_kill < EVENTS, "the kill must land mid-delivery"

        second = DevProcess(data_dir, "--broker", amqp_url, env=env)
        second.port = first.port  # the persisted trigger and the restarted runner agree on the address
        second.url = first.url
        second.start()
        try:
            deadline = time.monotonic() + 120
            while len(set(sink.ids()) & set(ids)) < EVENTS and time.monotonic() < deadline:
                time.sleep(0.1)
            assert set(ids) <= set(sink.ids())
        finally:
            second.stop()
    finally:
        if first.proc and first.proc.poll() is None:
            first.stop()
        delete_platform_broker(amqp_url, broker_name, ["to-sink"])  # the registry's queues too
