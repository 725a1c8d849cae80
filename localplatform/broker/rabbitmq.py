"""The RabbitMQ broker, with the Knative eventing-rabbitmq topology.

One headers exchange per broker; one durable queue per trigger, bound with `x-match: all` on the
trigger's filter attributes (the AMQP headers carry the CloudEvent attributes); a dead-letter exchange
whose queue keeps what could not be delivered anywhere. The ingress returns only after RabbitMQ has
confirmed the publish; a message is acknowledged only after its delivery finished, so a crash
redelivers instead of losing it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pika
import pika.exceptions
import pika.frame
import pika.spec
from pika.adapters.blocking_connection import BlockingChannel
from pika.adapters.select_connection import IOLoop, SelectConnection
from pika.channel import Channel

from eventing.amqp_codec import CONTENT_TYPE_HEADER, AmqpMessage, from_amqp, to_amqp
from eventing.cloudevent import CloudEvent
from eventing.trigger import Trigger
from eventing.validation import InvalidEvent
from localplatform.broker.base import Broker, BrokerUnavailable
from localplatform.broker.work_queue import WorkQueue
from localplatform.delivery import Delivery, DeliveryResult, Outcome
from shared import metrics

log = logging.getLogger("datafrost.broker.rabbitmq")
PUBLISH_TIMEOUT_SECONDS = 30.0
RECONNECT_DELAY_SECONDS = 1.0
CLOSE_GRACE_SECONDS = 5.0  # how long closing waits for the confirms of publishes already sent
PREFETCH_PER_WORKER = 10
MIN_PREFETCH = 20
# A parallelism-1 consumer makes each first attempt on its connection's own thread, which is then deaf
# to RabbitMQ for up to the trigger's timeout: only for timeouts within one heartbeat interval.
CONSUMER_HEARTBEAT_SECONDS = 60
INLINE_TIMEOUT_LIMIT_SECONDS = 30.0


def prefetch_count(parallelism: int) -> int:
    """Messages a trigger's consumer holds unacknowledged: the next ones are local, not a round trip away."""
    return max(MIN_PREFETCH, parallelism * PREFETCH_PER_WORKER)


@dataclass(frozen=True)
class Topology:
    """Names of the exchanges and queues of one broker."""

    broker: str
    prefix: str = "datafrost"

    @property
    def exchange(self) -> str:
        return f"{self.prefix}.{self.broker}"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.prefix}.{self.broker}.dlx"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.prefix}.{self.broker}.dead-letters"

    def queue(self, trigger: str) -> str:
        return f"{self.prefix}.{self.broker}.trigger.{trigger}"


def binding_arguments(trigger: Trigger) -> dict[str, str]:
    """`x-match: all` on the filter, keyed by header name: datacontenttype travels as `content-type`."""
    headers = {CONTENT_TYPE_HEADER if k == "datacontenttype" else k: v for k, v in trigger.filter.items()}
    return {"x-match": "all", **headers}


@dataclass
class _Consumer:
    trigger: Trigger
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    in_flight: int = 0


class RabbitMQBroker(Broker):
    """A broker whose queues live in RabbitMQ; survives restarts of DataFrost without losing events."""

    def __init__(self, url: str, name: str = "default", queue_type: str = "classic") -> None:
        super().__init__(name)
        self._params = pika.URLParameters(url)
        self._params.heartbeat = 30
        self._params.blocked_connection_timeout = 60
        self._consumer_params = pika.URLParameters(url)
        self._consumer_params.heartbeat = CONSUMER_HEARTBEAT_SECONDS
        self._consumer_params.blocked_connection_timeout = 60
        self.topology = Topology(name)
        self._queue_type = queue_type
        self._consumers: dict[str, _Consumer] = {}
        with self._admin() as channel:
            self._declare_broker(channel)
        self._publisher = _Publisher(self._params, self.topology.exchange, name)

    # -- topology -------------------------------------------------------------------------------
    def _admin(self) -> _AdminChannel:
        return _AdminChannel(self._params)

    def _declare_broker(self, channel: BlockingChannel) -> None:
        t = self.topology
        channel.exchange_declare(t.exchange, exchange_type="headers", durable=True)
        channel.exchange_declare(t.dead_letter_exchange, exchange_type="fanout", durable=True)
        channel.queue_declare(t.dead_letter_queue, durable=True, arguments={"x-queue-type": self._queue_type})
        channel.queue_bind(t.dead_letter_queue, t.dead_letter_exchange)

    def _declare_trigger(self, channel: BlockingChannel, trigger: Trigger) -> None:
        name = self.topology.queue(trigger.name)
        arguments = {
            "x-dead-letter-exchange": self.topology.dead_letter_exchange,
            "x-queue-type": self._queue_type,
        }
        channel.queue_declare(name, durable=True, arguments=arguments)
        channel.queue_bind(name, self.topology.exchange, arguments=binding_arguments(trigger))

    def delete_topology(self) -> None:
        """Remove this broker's exchanges and queues from RabbitMQ (tests, and `broker delete`)."""
        with self._admin() as channel:
            for trigger in self.triggers():
                channel.queue_delete(self.topology.queue(trigger.name))
            channel.queue_delete(self.topology.dead_letter_queue)
            channel.exchange_delete(self.topology.exchange)
            channel.exchange_delete(self.topology.dead_letter_exchange)

    # -- publishing -----------------------------------------------------------------------------
    def _store(self, events: Sequence[CloudEvent]) -> None:
        if self._stopping.is_set():
            raise BrokerUnavailable("the broker is shutting down")
        self._publisher.submit([to_amqp(e) for e in events]).wait(PUBLISH_TIMEOUT_SECONDS)
        metrics.events_received.labels(self.name).inc(len(events))

    # -- consuming ------------------------------------------------------------------------------
    def _start_trigger(self, trigger: Trigger, previous: Trigger | None) -> None:
        """Declare the trigger's queue and binding (a replaced trigger keeps its queue and backlog; its
        binding moves if the filter changed), then start its consumer."""
        with self._admin() as channel:
            if previous is not None and previous.filter != trigger.filter:
                channel.queue_unbind(
                    self.topology.queue(trigger.name),
                    self.topology.exchange,
                    arguments=binding_arguments(previous),
                )
            self._declare_trigger(channel, trigger)
        consumer = _Consumer(trigger)
        consumer.thread = threading.Thread(
            target=self._consume_loop, args=(consumer,), name=f"amqp-{trigger.name}", daemon=True
        )
        consumer.thread.start()
        self._consumers[trigger.name] = consumer

    def _stop_trigger(self, trigger: Trigger, purge: bool = False) -> None:
        consumer = self._consumers.pop(trigger.name)
        consumer.stop.set()
        if consumer.thread is not None:
            consumer.thread.join(timeout=trigger.delivery.timeout + 5)
        if purge:
            with self._admin() as channel:
                channel.queue_delete(self.topology.queue(trigger.name))

    def _consume_loop(self, consumer: _Consumer) -> None:
        while not consumer.stop.is_set() and not self._stopping.is_set():
            try:
                self._consume(consumer)
            except (pika.exceptions.AMQPError, OSError) as exc:
                log.warning(
                    "consumer for trigger %s lost RabbitMQ (%s); reconnecting", consumer.trigger.name, exc
                )
                consumer.stop.wait(RECONNECT_DELAY_SECONDS)
            except Exception:  # no thread for a delivery worker, say: try again, never stop for good
                log.exception("consumer for trigger %s failed; starting it again", consumer.trigger.name)
                consumer.stop.wait(RECONNECT_DELAY_SECONDS)

    def _consume(self, consumer: _Consumer) -> None:
        """One connection's worth of consuming: prefetch a window, deliver, settle after.

        The connection's thread (this one) receives messages and hands them, in delivery order, to
        `parallelism` delivery threads; their outcomes come back to this thread, which acknowledges each
        message only once its delivery finished (at least once). With parallelism 1 (FIFO) this thread
        makes the first attempt itself while no earlier message is still with the delivery thread, and
        hands over only what needs retries or a dead letter, and whatever arrives behind it; the
        delivery thread waits out each backoff, holding the queue (the price of order). With more, a
        retrying message waits in the `WorkQueue`, unacknowledged and holding no delivery thread, and
        the others are delivered meanwhile; it keeps one place of the prefetch window until it is
        finished, and if the connection goes, RabbitMQ delivers it again.
        """
        trigger = consumer.trigger
        connection = pika.BlockingConnection(self._consumer_params)
        work: WorkQueue[_Work] = WorkQueue()  # with the delivery threads, until finished
        inline = trigger.parallelism == 1 and trigger.delivery.timeout <= INLINE_TIMEOUT_LIMIT_SECONDS
        abandon = threading.Event()  # this connection is going away: deliver nothing more
        workers: list[threading.Thread] = []
        acks: _Acks | None = None
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=prefetch_count(trigger.parallelism))
            settle = _Acks(channel, consumer)
            acks = settle

            def wake() -> None:  # from a delivery thread: outcomes are waiting to be settled
                with contextlib.suppress(Exception):  # connection gone: RabbitMQ redelivers instead
                    connection.add_callback_threadsafe(settle.settle)

            def on_message(
                ch: BlockingChannel, method: object, props: pika.BasicProperties, body: bytes
            ) -> None:
                tag = method.delivery_tag  # type: ignore[attr-defined]
                if consumer.stop.is_set() or self._stopping.is_set():
                    # arrived while stopping: leave it for the next consumer, requeued in order on exit
                    settle.received(tag)
                    settle.finished(tag, Outcome.ABORTED)
                    return
                try:
                    event = from_amqp(props.headers or {}, body, props.content_type)
                except InvalidEvent as exc:
                    log.error(
                        "message on trigger %s is not a valid CloudEvent (%s); dead-lettered",
                        trigger.name,
                        exc,
                    )
                    ch.basic_nack(tag, requeue=False)
                    return
                settle.received(tag)
                delivery = Delivery(event, trigger)
                if inline and not work:  # nothing ahead of it: attempt it here, no hand-over
                    try:
                        step = self.dispatcher.step(delivery)
                    except Exception as exc:
                        step = DeliveryResult(_crashed(trigger, exc), 1, None)
                    if isinstance(step, DeliveryResult):
                        settle.finished(tag, step.outcome)  # acked with the others after this round
                        return
                    work.put((tag, delivery, step.delay))  # retries or a dead letter, after the backoff
                    return
                work.put((tag, delivery, 0.0))

            for i in range(trigger.parallelism):
                worker = threading.Thread(
                    target=self._deliver_loop,
                    args=(consumer, work, abandon, settle, wake),
                    name=f"deliver-{trigger.name}-{i}",
                    daemon=True,
                )
                worker.start()  # RuntimeError when no more threads can be started
                workers.append(worker)  # only a started thread can be joined
            channel.basic_consume(self.topology.queue(trigger.name), on_message, auto_ack=False)
            while not consumer.stop.is_set() and not self._stopping.is_set():
                connection.process_data_events(time_limit=0.2)
                settle.settle()  # what was delivered here this round: one cumulative ack, mostly
        finally:
            abandon.set()
            for tag, _, _ in work.abandon():  # not attempted (further): back to the queue, in order
                if acks is not None:
                    acks.finished(tag, Outcome.ABORTED)
            try:
                for worker in workers:  # deliveries in flight finish (or abort between attempts)
                    worker.join()
                if acks is not None and connection.is_open:  # settle what finished while stopping
                    acks.settle()
            finally:
                consumer.in_flight = 0  # whatever is left unsettled goes back to the queue on close
                _close_quietly(connection)

    def _deliver_loop(
        self,
        consumer: _Consumer,
        work: WorkQueue[_Work],
        abandon: threading.Event,
        acks: _Acks,
        wake: Callable[[], None],
    ) -> None:
        """A delivery thread: deliver what the connection's thread handed over, report each outcome."""
        while (item := work.get()) is not None:
            outcome = self._advance(consumer, work, item, abandon)
            if outcome is None:
                continue  # scheduled again, waiting out its backoff
            if acks.finished(item[0], outcome):
                wake()
            work.done()  # after its outcome is recorded: what comes next may go inline

    def _advance(
        self, consumer: _Consumer, work: WorkQueue[_Work], item: _Work, abandon: threading.Event
    ) -> Outcome | None:
        """With parallelism 1, deliver `item` to the end, waiting out each backoff on this thread (FIFO);
        with more, make its next attempt and schedule the one after (None): no thread waits for it."""
        tag, delivery, backoff = item
        stop = consumer.stop
        if abandon.is_set() or stop.is_set() or self._stopping.is_set():
            return Outcome.ABORTED  # not attempted (further): back to the queue
        try:
            if consumer.trigger.parallelism == 1:
                if backoff and stop.wait(backoff):  # after the attempt made on the connection's thread
                    return Outcome.ABORTED
                return self.dispatcher.deliver(delivery, stop).outcome
            step = self.dispatcher.step(delivery)
        except Exception as exc:
            return _crashed(consumer.trigger, exc)
        if isinstance(step, DeliveryResult):
            return step.outcome
        return None if work.put_later((tag, delivery, 0.0), step.delay) else Outcome.ABORTED

    def backlog(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._admin() as channel:
            for trigger in self.triggers():
                declared = channel.queue_declare(self.topology.queue(trigger.name), passive=True)
                consumer = self._consumers.get(trigger.name)
                counts[trigger.name] = declared.method.message_count + (consumer.in_flight if consumer else 0)
        return counts

    def dead_letter_count(self) -> int:
        """Messages kept in the broker's dead-letter queue."""
        with self._admin() as channel:
            return int(
                channel.queue_declare(self.topology.dead_letter_queue, passive=True).method.message_count
            )

    def close(self) -> None:
        super().close()
        self._publisher.close()  # publishes that raced the shutdown are refused, never left hanging


def _crashed(trigger: Trigger, exc: Exception) -> Outcome:
    """The outcome of a delivery that raised: a reply the broker did not store (shutting down, or no
    confirm) sends the event back to its queue, to be delivered (and answered) again; anything else is
    dead-lettered, kept intact in the dead-letter queue."""
    if isinstance(exc, BrokerUnavailable):
        log.warning(
            "a reply to trigger %s was not stored (%s); the event goes back to its queue", trigger.name, exc
        )
        return Outcome.ABORTED
    log.error("delivery to trigger %s crashed", trigger.name, exc_info=exc)
    return Outcome.UNDELIVERABLE


def _properties(message: AmqpMessage) -> pika.BasicProperties:
    return pika.BasicProperties(
        headers=message.headers,
        content_type=message.content_type,
        message_id=message.message_id,
        delivery_mode=pika.DeliveryMode.Persistent,
    )


def _close_quietly(connection: pika.BlockingConnection | None) -> None:
    if connection is not None and connection.is_open:
        with contextlib.suppress(Exception):  # already broken; nothing left to release
            connection.close()
    return None


# tag, delivery, backoff to wait out before its next step (after an attempt made on the connection's thread)
_Work = tuple[int, Delivery, float]


class _Acks:
    """Delivery outcomes, settled with RabbitMQ on the consumer connection's thread.

    `received` and `settle` run on that thread, `finished` on the delivery threads. A run of the oldest
    outstanding messages that all succeeded is acknowledged with one cumulative ack (`multiple`), which
    only ever covers messages whose delivery finished; an outcome that arrives ahead of an older
    message's (parallelism > 1) is settled on its own.
    """

    def __init__(self, channel: BlockingChannel, consumer: _Consumer) -> None:
        self._channel = channel
        self._consumer = consumer
        self._outstanding: collections.deque[int] = collections.deque()  # in delivery-tag order
        self._settled_early: set[int] = set()
        self._lock = threading.Lock()
        self._finished: list[tuple[int, Outcome]] = []

    def received(self, tag: int) -> None:
        self._outstanding.append(tag)
        self._consumer.in_flight += 1

    def finished(self, tag: int, outcome: Outcome) -> bool:
        """Record an outcome; True when it is the first one waiting: the connection's thread needs waking."""
        with self._lock:
            self._finished.append((tag, outcome))
            return len(self._finished) == 1

    def settle(self) -> None:
        with self._lock:
            finished, self._finished = self._finished, []
        if not finished:
            return
        outcomes = dict(finished)
        ack_up_to = 0
        while self._outstanding:
            tag = self._outstanding[0]
            if tag in self._settled_early:
                self._settled_early.discard(tag)
            elif (outcome := outcomes.pop(tag, None)) is None:
                break  # still being delivered
            elif outcome in (Outcome.DELIVERED, Outcome.DEAD_LETTERED):
                ack_up_to = tag
            else:
                if ack_up_to:
                    self._channel.basic_ack(ack_up_to, multiple=True)
                    ack_up_to = 0
                self._reject(tag, outcome)
            self._outstanding.popleft()
        if ack_up_to:
            self._channel.basic_ack(ack_up_to, multiple=True)
        for tag, outcome in outcomes.items():  # finished ahead of an older message
            self._settled_early.add(tag)
            if outcome in (Outcome.DELIVERED, Outcome.DEAD_LETTERED):
                self._channel.basic_ack(tag)
            else:
                self._reject(tag, outcome)
        self._consumer.in_flight -= len(finished)

    def _reject(self, tag: int, outcome: Outcome) -> None:
        if outcome is Outcome.ABORTED:
            self._channel.basic_nack(tag, requeue=True)  # not attempted or interrupted: redelivered later
        else:
            self._channel.basic_nack(tag, requeue=False)  # to the dead-letter exchange, kept there


class _Batch:
    """One caller's messages: `wait` returns once RabbitMQ has confirmed all of them, or raises.

    Settled once, by the publisher's I/O thread (or by `close` after that thread ended); the caller
    waits on a plain lock, the cheapest hand-over there is.
    """

    __slots__ = ("_done", "error", "remaining", "settled")

    def __init__(self, count: int) -> None:
        self.remaining = count
        self.error: str | None = None
        self.settled = False
        self._done = threading.Lock()
        self._done.acquire()  # released when settled

    def confirmed(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self._settle()

    def fail(self, reason: str) -> None:
        if not self.settled:
            self.error = reason
            self._settle()

    def _settle(self) -> None:
        if not self.settled:
            self.settled = True
            self._done.release()

    def wait(self, timeout: float) -> None:
        if not self._done.acquire(timeout=timeout):
            raise BrokerUnavailable("RabbitMQ did not confirm the publish in time")
        if self.error is not None:
            raise BrokerUnavailable(self.error)


class _Publisher:
    """Publishes with confirms on one connection of its own I/O thread, without waiting in between.

    `submit` queues a caller's messages and returns their `_Batch` to wait on. The I/O thread publishes
    whatever is queued as soon as its confirm-mode channel is ready, never waiting for earlier confirms,
    and settles a batch when RabbitMQ has acked each of its messages. A nack, a channel or connection
    that closes with messages unconfirmed, or a connection that cannot be opened fails the batches
    concerned (the ingress answers 503, never a false 202). The connection is opened when there is
    something to publish, and opened again on the next publish after it was lost.
    """

    def __init__(self, params: pika.URLParameters, exchange: str, name: str) -> None:
        self._params = params
        self._exchange = exchange
        self._lock = threading.Lock()  # guards the three below, shared with the callers' threads
        self._queued: collections.deque[tuple[list[AmqpMessage], _Batch]] = collections.deque()
        self._woken = False
        self._closed = False
        # the rest belongs to the I/O thread
        self._ioloop = IOLoop()
        self._connection: SelectConnection | None = None
        self._channel: Channel | None = None
        self._ready = False
        self._last_tag = 0
        self._unconfirmed: collections.OrderedDict[int, _Batch] = collections.OrderedDict()
        self._thread = threading.Thread(target=self._run, name=f"amqp-publisher-{name}", daemon=True)
        self._thread.start()

    def submit(self, messages: list[AmqpMessage]) -> _Batch:
        batch = _Batch(len(messages))
        with self._lock:
            if self._closed:
                raise BrokerUnavailable("the broker is shutting down")
            self._queued.append((messages, batch))
            if not self._woken:  # one wake-up serves every publish queued before it runs
                self._woken = True
                self._ioloop.add_callback_threadsafe(self._on_wake)
        return batch

    def close(self) -> None:
        """Refuse new publishes, wait a little for the confirms still due, then close the connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            queued = list(self._queued)
            self._queued.clear()
            self._ioloop.add_callback_threadsafe(self._shutdown)
        for _, batch in queued:
            batch.fail("the broker is shutting down")
        self._thread.join(timeout=CLOSE_GRACE_SECONDS + 5)
        for batch in list(self._unconfirmed.values()):
            batch.fail("the broker shut down before RabbitMQ confirmed the publish")

    # -- the I/O thread -------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._ioloop.start()
        finally:
            self._ioloop.close()

    def _on_wake(self) -> None:
        with self._lock:
            self._woken = False
            if self._closed:
                return
        if self._ready:
            self._publish_queued()
        elif self._connection is None:
            self._connection = SelectConnection(
                self._params,
                on_open_callback=self._on_connection_open,
                on_open_error_callback=self._on_connection_open_error,
                on_close_callback=self._on_connection_closed,
                custom_ioloop=self._ioloop,
            )
        # else: connecting; what is queued goes out once the channel is ready

    def _publish_queued(self) -> None:
        with self._lock:
            work = list(self._queued)
            self._queued.clear()
        channel = self._channel
        assert channel is not None
        for position, (messages, batch) in enumerate(work):
            try:
                for message in messages:
                    channel.basic_publish(self._exchange, "", message.body, _properties(message))
                    self._last_tag += 1
                    self._unconfirmed[self._last_tag] = batch
            except Exception as exc:  # the channel is closing: its callback fails what was sent
                log.error("publish to RabbitMQ failed: %s", exc)
                for _, failed in work[position:]:
                    failed.fail(f"RabbitMQ refused or lost the publish: {exc}")
                return

    def _on_confirm(self, frame: pika.frame.Method) -> None:
        method = frame.method
        nacked = isinstance(method, pika.spec.Basic.Nack)
        tag: int = method.delivery_tag
        if method.multiple:
            batches = []
            while self._unconfirmed and next(iter(self._unconfirmed)) <= tag:
                batches.append(self._unconfirmed.popitem(last=False)[1])
        else:
            single = self._unconfirmed.pop(tag, None)
            batches = [single] if single is not None else []
        for batch in batches:
            if nacked:
                batch.fail("RabbitMQ refused the publish (nack)")
            else:
                batch.confirmed()
        if nacked:
            log.error("RabbitMQ nacked %d published message(s)", len(batches))

    def _on_connection_open(self, connection: pika.connection.Connection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.confirm_delivery(self._on_confirm, callback=self._on_confirm_mode)

    def _on_confirm_mode(self, _frame: pika.frame.Method) -> None:
        self._ready = True
        self._last_tag = 0
        self._publish_queued()

    def _on_connection_open_error(
        self, _connection: pika.connection.Connection, error: BaseException
    ) -> None:
        self._connection = None
        if not self._is_closed():
            log.error("cannot connect to RabbitMQ to publish: %s", error)
        self._fail_all(f"cannot connect to RabbitMQ: {error!r}")
        self._stop_if_closed()

    def _on_channel_closed(self, _channel: Channel, reason: BaseException) -> None:
        self._ready = False
        self._channel = None
        if not self._is_closed():
            log.error("the publishing channel closed: %s", reason)
        self._fail_all(f"RabbitMQ refused or lost the publish: {reason!r}")
        connection = self._connection
        if connection is not None and connection.is_open:
            connection.close()  # the next publish opens a fresh connection

    def _on_connection_closed(self, _connection: pika.connection.Connection, reason: BaseException) -> None:
        self._ready = False
        self._channel = None
        self._connection = None
        if not self._is_closed():
            log.error("the publishing connection closed: %s", reason)
        self._fail_all(f"RabbitMQ refused or lost the publish: {reason!r}")
        self._stop_if_closed()

    def _is_closed(self) -> bool:
        with self._lock:
            return self._closed

    def _stop_if_closed(self) -> None:
        if self._is_closed():
            self._ioloop.stop()

    def _fail_all(self, reason: str) -> None:
        """Fail everything sent and not confirmed, and everything queued: no caller waits in vain."""
        with self._lock:
            queued = list(self._queued)
            self._queued.clear()
        unconfirmed = list(self._unconfirmed.values())
        self._unconfirmed.clear()
        for batch in unconfirmed:
            batch.fail(reason)
        for _, batch in queued:
            batch.fail(reason)

    def _shutdown(self, deadline: float | None = None) -> None:
        deadline = deadline if deadline is not None else time.monotonic() + CLOSE_GRACE_SECONDS
        if self._unconfirmed and self._ready and time.monotonic() < deadline:
            self._ioloop.call_later(0.02, lambda: self._shutdown(deadline))
            return
        connection = self._connection
        if connection is not None and not (connection.is_closing or connection.is_closed):
            try:
                connection.close()  # its close callback stops the loop
                return
            except pika.exceptions.AMQPError:
                pass
        self._ioloop.stop()


class _AdminChannel:
    """A short-lived connection and channel for declaring and inspecting topology."""

    def __init__(self, params: pika.URLParameters) -> None:
        self._params = params
        self._connection: pika.BlockingConnection | None = None

    def __enter__(self) -> BlockingChannel:
        self._connection = pika.BlockingConnection(self._params)
        return self._connection.channel()

    def __exit__(self, *exc: object) -> None:
        _close_quietly(self._connection)
