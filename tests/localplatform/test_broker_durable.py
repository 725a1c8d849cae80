"""The durable local broker keeps what it accepted: across close and reopen, across SIGKILL, with its
attempt counts; removing a trigger purges its rows, replacing it keeps them.

The delivery rules themselves run on this backend too (tests/localplatform/test_delivery.py).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.wrappers import Response

from eventing.cloudevent import CloudEvent, new_event
from eventing.http_codec import to_binary
from eventing.trigger import DeliverySpec, Trigger
from localplatform.broker.durable import DurableBroker
from tests.support.durable_child import TYPE, sink_trigger
from tests.support.sink import Sink, status


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "broker" / "test.sqlite3"


@pytest.fixture
def opened(path: Path) -> Iterator[list[DurableBroker]]:
    """Brokers the test opens on `path`; every one closed at teardown."""
    brokers: list[DurableBroker] = []
    yield brokers
    for broker in brokers:
        broker.close()


def open_broker(opened: list[DurableBroker], path: Path) -> DurableBroker:
    opened.append(DurableBroker(path, "test"))
    return opened[-1]


def events(count: int, prefix: str = "ev") -> list[CloudEvent]:
    return [new_event(TYPE, "/tests/durable", {"n": i}, id=f"{prefix}-{i}") for i in range(count)]


def wait_until(predicate: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def classify(accepted: list[str], received: list[str]) -> dict[str, int]:
    """Each accepted event: delivered once, duplicated (more than once), or lost (never)."""
    seen = Counter(received)
    return {
        "delivered": sum(1 for i in accepted if seen[i] == 1),
        "duplicated": sum(1 for i in accepted if seen[i] > 1),
        "lost": sum(1 for i in accepted if seen[i] == 0),
    }


def test_a_backlog_left_at_close_is_delivered_in_order_after_reopening(
    path: Path, opened: list[DurableBroker], sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()

    def held(e: CloudEvent, n: int) -> Response:
        release.wait(10)
        return status(204)

    sink.answer = held
    first = open_broker(opened, path)
    first.set_trigger(sink_trigger(sink.url, retry=3))
    sent = events(30)
    first.publish(sent)
    sink.wait_for(1)  # the first is in flight, the rest queued
    release.set()
    with caplog.at_level(logging.INFO, logger="datafrost.broker.local"):
        first.close()
    waiting = first.backlog()["to-sink"]
    assert waiting >= 29
    assert f"{waiting} events wait in {path} for the next start (to-sink: {waiting})" in caplog.text

    sink.answer = lambda e, n: status(204)
    second = open_broker(opened, path)
    second.set_trigger(sink_trigger(sink.url, retry=3))
    wait_until(lambda: set(sink.ids()) == {e.id for e in sent}, "every event")
    wait_until(lambda: second.backlog() == {"to-sink": 0}, "an empty backlog")
    received = sink.ids()
    assert [i for i in received if i != received[0]] == [e.id for e in sent[1:]]  # in order, at most
    assert classify([e.id for e in sent], received)["lost"] == 0  # the one in flight twice


def test_sigkill_mid_delivery_loses_no_accepted_event(
    path: Path, opened: list[DurableBroker], sink: Sink
) -> None:
    def slow(e: CloudEvent, n: int) -> Response:
        time.sleep(0.002)
        return status(204)

    sink.answer = slow
    count = 500
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.durable_child", str(path), sink.url, "3", str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: len(sink.received) >= 50, "deliveries from the child")
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    accepted = [line for line in out.splitlines() if line.startswith("durable-")]
    delivered_before = set(sink.ids())
    assert len(delivered_before) < len(accepted), "the kill must land mid-delivery"

    broker = open_broker(opened, path)
    broker.set_trigger(sink_trigger(sink.url, retry=3))
    wait_until(lambda: set(accepted) <= set(sink.ids()), "every accepted event")
    wait_until(lambda: broker.backlog() == {"to-sink": 0}, "an empty backlog")
    outcome = classify(accepted, sink.ids())
    assert outcome["lost"] == 0, outcome
    assert outcome["duplicated"] <= 1, outcome  # at most the one in flight at the kill
    assert outcome["delivered"] + outcome["duplicated"] == len(accepted)


def test_the_attempt_count_survives_a_restart(path: Path, opened: list[DurableBroker], sink: Sink) -> None:
    sink.answer = lambda e, n: status(503)
    trigger = sink_trigger(sink.url, retry=3)
    slow_backoff = Trigger(
        trigger.name, trigger.subscriber, trigger.filter, DeliverySpec(3, "linear", 0.5, 5.0)
    )
    first = open_broker(opened, path)
    first.set_trigger(slow_backoff)
    (sent,) = events(1)
    first.publish([sent])
    sink.wait_for(2)  # two attempts made; the third waits out 1 s of backoff
    first.close()
    assert len(sink.received) == 2

    second = open_broker(opened, path)
    second.set_trigger(trigger)
    wait_until(lambda: second.dead_letter_count() == 1, "the event in the dead table")
    assert sink.ids() == [sent.id] * 4  # retry 3: four attempts in all, two before the restart
    assert second.backlog() == {"to-sink": 0}


def test_a_crash_loop_runs_out_of_attempts(path: Path, opened: list[DurableBroker], sink: Sink) -> None:
    """Each start makes an attempt that never ends before the process is killed; with retry 1 the third
    start makes none: the event is kept as undeliverable."""
    release = threading.Event()

    def hang(e: CloudEvent, n: int) -> Response:
        release.wait(30)
        return status(204)

    sink.answer = hang
    try:
        for kill in range(2):
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.durable_child",
                    str(path),
                    sink.url,
                    "1",
                    str(1 - kill),
                ],
                stdout=subprocess.DEVNULL,
            )
            try:
                sink.wait_for(kill + 1)
            finally:
                child.kill()
                child.wait()
    finally:
        release.set()
    broker = open_broker(opened, path)
    broker.set_trigger(sink_trigger(sink.url, retry=1))
    wait_until(lambda: broker.dead_letter_count() == 1, "the event in the dead table")
    assert broker.backlog() == {"to-sink": 0}
    assert len(sink.received) == 2


def test_removing_a_trigger_purges_its_rows(path: Path, opened: list[DurableBroker], sink: Sink) -> None:
    sink.answer = lambda e, n: status(503)
    first = open_broker(opened, path)
    first.set_trigger(sink_trigger(sink.url, retry=50))
    first.publish(events(10))
    sink.wait_for(1)
    assert first.remove_trigger("to-sink") is True
    assert first.backlog() == {}
    first.close()

    sink.answer = lambda e, n: status(204)
    second = open_broker(opened, path)
    second.set_trigger(sink_trigger(sink.url, retry=3))
    assert second.backlog() == {"to-sink": 0}
    (sentinel,) = events(1, "sentinel")
    second.publish([sentinel])
    sink.wait_for(2)
    wait_until(lambda: second.backlog() == {"to-sink": 0}, "the sentinel delivered")
    assert sink.ids()[-1] == sentinel.id and sentinel.id not in sink.ids()[:-1]
    assert set(sink.ids()[:-1]) == {"ev-0"}  # only attempts made before the removal


def test_a_replaced_trigger_keeps_its_backlog(
    path: Path, opened: list[DurableBroker], make_sinks: list[Sink]
) -> None:
    old, new = make_sinks
    release = threading.Event()

    def held(e: CloudEvent, n: int) -> Response:
        release.wait(10)
        return status(503)

    old.answer = held
    broker = open_broker(opened, path)
    broker.set_trigger(sink_trigger(old.url, retry=50))
    sent = events(5)
    broker.publish(sent)
    old.wait_for(1)
    changing = threading.Thread(target=broker.set_trigger, args=(sink_trigger(new.url, retry=3),))
    changing.start()
    time.sleep(0.1)  # the change waits for the delivery in flight
    later = events(2, "later")
    broker.publish(later)  # while the trigger is being replaced: kept for the new definition
    release.set()
    changing.join(10)
    wait_until(lambda: len(new.ids()) == 7, "the backlog at the new subscriber")
    assert new.ids() == [e.id for e in [*sent, *later]]
    assert old.ids() == [sent[0].id]


def test_rows_of_triggers_not_set_again_are_kept_and_logged(
    path: Path, opened: list[DurableBroker], sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    sink.answer = lambda e, n: status(503)
    first = open_broker(opened, path)
    first.set_trigger(sink_trigger(sink.url, retry=50))
    first.publish(events(3))
    first.close()

    second = open_broker(opened, path)
    with caplog.at_level(logging.WARNING, logger="datafrost.broker.local"):
        second.log_unclaimed()
    assert "3 stored events wait for triggers that are not set (to-sink: 3)" in caplog.text
    second.close()
    sink.answer = lambda e, n: status(204)
    third = open_broker(opened, path)
    third.set_trigger(sink_trigger(sink.url, retry=3))
    wait_until(lambda: {"ev-0", "ev-1", "ev-2"} <= set(sink.ids()), "the kept events")


def test_a_second_broker_cannot_open_the_same_file(path: Path, opened: list[DurableBroker]) -> None:
    from localplatform.broker.base import BrokerUnavailable

    open_broker(opened, path)
    with pytest.raises(BrokerUnavailable, match="cannot open the broker's file"):
        DurableBroker(path, "other")


@pytest.fixture
def make_sinks() -> Iterator[list[Sink]]:
    sinks = [Sink(), Sink()]
    yield sinks
    for s in sinks:
        s.close()


def test_a_delivery_whose_reply_was_not_stored_is_kept(
    path: Path, opened: list[DurableBroker], sink: Sink
) -> None:
    """The reply is published before the delivery's row goes: when the broker refuses it (closing), the
    event itself is delivered again on the next start, and its reply with it."""
    reply = new_event("io.datafrost.test.reply", "/tests/replier", {"ok": True}, id="reply-1")
    headers, body = to_binary(reply)
    first = open_broker(opened, path)
    closing = threading.Thread(target=first.close)
    answered = threading.Event()

    def reply_while_closing(e: CloudEvent, n: int) -> Response:
        if n == 1:  # the broker starts closing before the subscriber answers
            closing.start()
            wait_until(first._stopping.is_set, "the broker to start closing")
            answered.set()
        return Response(body, status=200, headers=headers)

    sink.answer = reply_while_closing
    first.set_trigger(sink_trigger(sink.url, retry=3))
    (sent,) = events(1)
    first.publish([sent])
    assert answered.wait(10)
    closing.join(10)
    assert first.backlog() == {"to-sink": 1}

    replies = Sink()
    try:
        second = open_broker(opened, path)
        second.set_trigger(
            Trigger("replies", replies.url, {"type": reply.type}, DeliverySpec(3, "linear", 0.02))
        )
        second.set_trigger(sink_trigger(sink.url, retry=3))
        (got,) = replies.wait_for(1)
        assert got.event.id == reply.id
        wait_until(lambda: second.backlog() == {"replies": 0, "to-sink": 0}, "both delivered")
        assert sink.ids() == [sent.id, sent.id]
    finally:
        replies.close()
