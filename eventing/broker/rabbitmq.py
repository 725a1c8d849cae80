"""The RabbitMQ broker, with the Knative eventing-rabbitmq topology.

One headers exchange per broker; one durable queue per trigger, bound with `x-match: all` on the
trigger's filter attributes (the AMQP headers carry the CloudEvent attributes); a dead-letter exchange
whose queue keeps what could not be delivered anywhere. The ingress returns only after RabbitMQ has
confirmed the publish; a message is acknowledged only after its delivery finished, so a crash
redelivers instead of losing it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from eventing.amqp_codec import CONTENT_TYPE_HEADER, AmqpMessage, from_amqp, to_amqp
from eventing.broker.base import Broker
from eventing.cloudevent import CloudEvent
from eventing.delivery import Outcome
from eventing.trigger import Trigger
from eventing.validation import InvalidEvent
from shared import metrics

log = logging.getLogger("datafrost.broker.rabbitmq")
PUBLISH_TIMEOUT_SECONDS = 30.0
RECONNECT_DELAY_SECONDS = 1.0


class BrokerUnavailable(RuntimeError):
    """RabbitMQ did not confirm a publish: the events were not accepted."""


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
        self.topology = Topology(name)
        self._queue_type = queue_type
        self._consumers: dict[str, _Consumer] = {}
        self._outbox: queue.Queue[tuple[list[AmqpMessage], concurrent.futures.Future[None]]] = queue.Queue()
        with self._admin() as channel:
            self._declare_broker(channel)
        self._publisher = threading.Thread(target=self._publish_loop, name="amqp-publisher", daemon=True)
        self._publisher.start()

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
    def publish(self, events: Sequence[CloudEvent]) -> None:
        if not events:
            return
        if self._stopping.is_set():
            raise BrokerUnavailable("the broker is shutting down")
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._outbox.put(([to_amqp(e) for e in events], done))
        try:
            done.result(timeout=PUBLISH_TIMEOUT_SECONDS)
        except concurrent.futures.TimeoutError:
            raise BrokerUnavailable("RabbitMQ did not confirm the publish in time") from None
        metrics.events_received.labels(self.name).inc(len(events))

    def _publish_loop(self) -> None:
        connection: pika.BlockingConnection | None = None
        channel: BlockingChannel | None = None
        while not self._stopping.is_set():
            try:
                messages, done = self._outbox.get(timeout=0.5)
            except queue.Empty:
                if connection is not None and connection.is_open:
                    connection.process_data_events(0)
                continue
            try:
                if connection is None or not connection.is_open or channel is None or not channel.is_open:
                    connection, channel = self._connect_publisher()
                for message in messages:
                    channel.basic_publish(self.topology.exchange, "", message.body, _properties(message))
                done.set_result(None)
            except Exception as exc:  # connection lost, nack: the caller gets an error, not a 202
                log.error("publish to RabbitMQ failed: %s", exc)
                done.set_exception(BrokerUnavailable(f"RabbitMQ refused or lost the publish: {exc}"))
                _close_quietly(connection)
                connection = None
        _close_quietly(connection)

    def _connect_publisher(self) -> tuple[pika.BlockingConnection, BlockingChannel]:
        connection = pika.BlockingConnection(self._params)
        channel = connection.channel()
        channel.confirm_delivery()
        return connection, channel

    # -- consuming ------------------------------------------------------------------------------
    def _start_trigger(self, trigger: Trigger) -> None:
        with self._admin() as channel:
            self._declare_trigger(channel, trigger)
        consumer = _Consumer(trigger)
        consumer.thread = threading.Thread(
            target=self._consume_loop, args=(consumer,), name=f"amqp-{trigger.name}", daemon=True
        )
        self._consumers[trigger.name] = consumer
        consumer.thread.start()

    def _stop_trigger(self, trigger: Trigger, purge: bool = False) -> None:
        consumer = self._consumers.pop(trigger.name)
        consumer.stop.set()
        if consumer.thread is not None:
            consumer.thread.join(timeout=trigger.delivery.timeout + 5)
        if purge:
            with self._admin() as channel:
                channel.queue_delete(self.topology.queue(trigger.name))

    def set_trigger(self, trigger: Trigger) -> None:
        with self._lock:
            previous = self._triggers.get(trigger.name)
            if previous is None or previous == trigger:
                super().set_trigger(trigger)
                return
            # keep the queue and its backlog; move the binding if the filter changed
            self._stop_trigger(previous)
            if previous.filter != trigger.filter:
                with self._admin() as channel:
                    channel.queue_unbind(
                        self.topology.queue(trigger.name),
                        self.topology.exchange,
                        arguments=binding_arguments(previous),
                    )
            self._triggers[trigger.name] = trigger
            self._start_trigger(trigger)

    def _consume_loop(self, consumer: _Consumer) -> None:
        while not consumer.stop.is_set() and not self._stopping.is_set():
            try:
                self._consume(consumer)
            except (pika.exceptions.AMQPError, OSError) as exc:
                log.warning(
                    "consumer for trigger %s lost RabbitMQ (%s); reconnecting", consumer.trigger.name, exc
                )
                consumer.stop.wait(RECONNECT_DELAY_SECONDS)

    def _consume(self, consumer: _Consumer) -> None:
        trigger = consumer.trigger
        connection = pika.BlockingConnection(self._params)
        workers = concurrent.futures.ThreadPoolExecutor(trigger.parallelism, f"deliver-{trigger.name}")
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=trigger.parallelism)

            def settle(tag: int, result: Callable[[], Outcome]) -> None:
                consumer.in_flight -= 1
                try:
                    outcome = result()
                except concurrent.futures.CancelledError:  # never attempted: back to the queue
                    outcome = Outcome.ABORTED
                except Exception:
                    log.exception("delivery to trigger %s crashed", trigger.name)
                    outcome = Outcome.UNDELIVERABLE
                if outcome is Outcome.ABORTED:
                    channel.basic_nack(tag, requeue=True)
                elif outcome is Outcome.UNDELIVERABLE:
                    channel.basic_nack(tag, requeue=False)  # to the dead-letter exchange, kept there
                else:
                    channel.basic_ack(tag)

            def on_message(
                ch: BlockingChannel, method: object, props: pika.BasicProperties, body: bytes
            ) -> None:
                tag = method.delivery_tag  # type: ignore[attr-defined]
                if consumer.stop.is_set() or self._stopping.is_set():
                    ch.basic_nack(tag, requeue=True)  # arrived while stopping: leave it for the next consumer
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
                consumer.in_flight += 1
                future = workers.submit(
                    lambda: self.dispatcher.deliver(event, trigger, consumer.stop).outcome
                )
                future.add_done_callback(
                    lambda f: connection.add_callback_threadsafe(functools.partial(settle, tag, f.result))
                )

            channel.basic_consume(self.topology.queue(trigger.name), on_message, auto_ack=False)
            while not consumer.stop.is_set() and not self._stopping.is_set():
                connection.process_data_events(time_limit=0.2)
        finally:
            try:
                workers.shutdown(wait=True, cancel_futures=True)
                if connection.is_open:  # run the acks of deliveries that finished while stopping
                    connection.process_data_events(time_limit=0)
            finally:
                _close_quietly(connection)

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
        self._publisher.join(timeout=5)
        while not self._outbox.empty():  # publishes that raced the shutdown: refuse them, never hang
            _, done = self._outbox.get_nowait()
            done.set_exception(BrokerUnavailable("the broker is shutting down"))


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
