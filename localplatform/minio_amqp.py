"""MinIO's AMQP notification target, consumed: the local equivalent of Knative's RabbitmqSource.

MinIO (`internal/event/target/amqp.go`) declares its exchange and publishes each notification as a
message with content type `application/json`, headers `minio-bucket` and `minio-event`, and the same
`{"EventName", "Key", "Records"}` body as its webhook. This consumer declares a durable queue bound to
that exchange with the routing key, decodes each message with `pipeline.minio_codec`, hands the
CloudEvents to `publish`, and acknowledges only once `publish` returned: a failure is nacked and
requeued (retried after `retry_delay`), so nothing is lost. A message that is not a MinIO
notification can never succeed: it is rejected without requeue (dead-lettered if the queue has a
dead-letter exchange) and logged.

MinIO side, for example: `mc admin config set ALIAS notify_amqp:datafrost url=amqp://...
exchange=minio exchange_type=direct routing_key=minio.events durable=on delivery_mode=2
publisher_confirms=on queue_dir=/data/events`. The exchange is declared here only when it does not
exist yet (as durable `exchange_type`), so an exchange MinIO made is used as it is.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from eventing.cloudevent import CloudEvent
from pipeline.minio_codec import cloudevents_from_notification

log = logging.getLogger("datafrost.minio_amqp")
Publish = Callable[[list[CloudEvent]], None]


class MinioAmqpSource:
    """A consumer thread: MinIO notifications from RabbitMQ to `publish` (start / stop)."""

    def __init__(
        self,
        amqp_url: str,
        exchange: str,
        routing_key: str,
        queue_name: str,
        publish: Publish,
        *,
        exchange_type: str = "direct",
        retry_delay: float = 1.0,
    ) -> None:
        self._params = pika.URLParameters(amqp_url)
        self.exchange, self.routing_key, self.queue_name = exchange, routing_key, queue_name
        self.exchange_type = exchange_type
        self.retry_delay = retry_delay
        self._publish = publish
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # the URL may hold credentials: leave it out
        return f"MinioAmqpSource(exchange={self.exchange!r}, queue={self.queue_name!r})"

    def start(self, timeout: float = 15.0) -> MinioAmqpSource:
        """Start consuming; returns once the queue is declared and bound (TimeoutError otherwise)."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"minio-amqp-{self.queue_name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError(f"could not declare and bind queue {self.queue_name!r} in {timeout}s")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._consume()
            except pika.exceptions.AMQPError as exc:
                log.warning("AMQP connection for %s lost, reconnecting: %r", self.queue_name, exc)
            except Exception:
                log.exception("MinIO AMQP consumer for %s failed, restarting", self.queue_name)
            self._stopping.wait(self.retry_delay)

    def _declare(self, channel: BlockingChannel) -> None:
        try:
            channel.exchange_declare(self.exchange, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise
            channel = channel.connection.channel()
            channel.exchange_declare(self.exchange, self.exchange_type, durable=True)
        channel.queue_declare(self.queue_name, durable=True)
        channel.queue_bind(self.queue_name, self.exchange, self.routing_key)

    def _consume(self) -> None:
        connection = pika.BlockingConnection(self._params)
        try:
            self._declare(connection.channel())
            channel = connection.channel()
            channel.basic_qos(prefetch_count=1)
            self._ready.set()
            for method, _properties, body in channel.consume(self.queue_name, inactivity_timeout=0.2):
                if self._stopping.is_set():
                    break
                if method is not None:
                    self._handle(channel, method.delivery_tag, body)
            channel.cancel()
        finally:
            if connection.is_open:
                connection.close()

    def _handle(self, channel: BlockingChannel, tag: int, body: bytes) -> None:
        try:
            events = cloudevents_from_notification(json.loads(body))
        except ValueError as exc:
            log.error("dropping a message that is not a MinIO notification: %s", exc)
            channel.basic_reject(tag, requeue=False)
            return
        try:
            if events:
                self._publish(events)
        except Exception as exc:
            log.warning("publish failed, message requeued: %s", exc)
            channel.basic_nack(tag, requeue=True)
            self._stopping.wait(self.retry_delay)
            return
        channel.basic_ack(tag)
