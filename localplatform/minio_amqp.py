"""MinIO's AMQP notification target, consumed: the local equivalent of Knative's RabbitmqSource.

MinIO (`internal/event/target/amqp.go`) declares its exchange and publishes each notification as a
message with content type `application/json`, headers `minio-bucket` and `minio-event`, and the same
`{"EventName", "Key", "Records"}` body as its webhook. This consumer declares a durable queue bound to
that exchange with the routing key and, as the RabbitmqSource's adapter does on Knative, POSTs each
message as a binary `dev.knative.rabbitmq.event` (`eventing.rabbitmq_source`) to its sink:
storage-events' `/rabbitmq` route, which decodes and publishes exactly as on a cluster. A message is
acknowledged only once the sink answered 2xx; a retried answer (5xx, 404, 408, 409, 429, no answer)
is nacked and requeued (retried after `retry_delay`), so nothing is lost; any other answer (400:
not a MinIO notification) can never succeed: the message is rejected without requeue (dead-lettered
if the queue has a dead-letter exchange) and logged.

MinIO side, for example: `mc admin config set ALIAS notify_amqp:datafrost url=amqp://...
exchange=minio exchange_type=direct routing_key=minio.events durable=on delivery_mode=2
publisher_confirms=on queue_dir=/data/events`. The exchange is declared here only when it does not
exist yet (as durable `exchange_type`), so an exchange MinIO made is used as it is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pika
import pika.exceptions
import urllib3
from pika.adapters.blocking_connection import BlockingChannel

from eventing.http_codec import to_binary
from eventing.rabbitmq_source import from_message, source_of

log = logging.getLogger("datafrost.minio_amqp")
RETRIED = frozenset({404, 408, 409, 429})  # and every 5xx: the delivery rules' retried answers


class MinioAmqpSource:
    """A consumer thread: MinIO notifications from RabbitMQ to `publish` (start / stop)."""

    def __init__(
        self,
        amqp_url: str,
        exchange: str,
        routing_key: str,
        queue_name: str,
        sink: str,
        *,
        credentials: Callable[[str], dict[str, str]] = lambda url: {},
        exchange_type: str = "direct",
        retry_delay: float = 1.0,
    ) -> None:
        self._params = pika.URLParameters(amqp_url)
        self.exchange, self.routing_key, self.queue_name = exchange, routing_key, queue_name
        self.exchange_type = exchange_type
        self.retry_delay = retry_delay
        self.sink = sink
        self._credentials = credentials
        self._source = source_of("local", "minio-notifications", queue_name)
        self._http = urllib3.PoolManager(retries=False)
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
            for method, properties, body in channel.consume(self.queue_name, inactivity_timeout=0.2):
                if self._stopping.is_set():
                    break
                if method is not None:
                    self._handle(channel, method.delivery_tag, body, properties)
            channel.cancel()
        finally:
            if connection.is_open:
                connection.close()

    def _post(self, body: bytes, properties: pika.BasicProperties) -> int:
        """The sink's answer to the message's RabbitmqSource event (500 when it did not answer)."""
        event = from_message(
            body,
            source=self._source,
            content_type=properties.content_type,
            message_id=properties.message_id,
            timestamp=properties.timestamp,
        )
        headers, data = to_binary(event)
        try:
            headers.update(self._credentials(self.sink))
            answer = self._http.request("POST", self.sink, body=data, headers=headers, timeout=30.0)
        except Exception as exc:  # no answer (or no credentials): retried, as Knative's sources do
            log.warning("the sink did not answer: %s", exc)
            return 500
        return answer.status

    def _handle(
        self, channel: BlockingChannel, tag: int, body: bytes, properties: pika.BasicProperties
    ) -> None:
        status = self._post(body, properties)
        if 200 <= status < 300:
            channel.basic_ack(tag)
        elif status >= 500 or status in RETRIED:
            log.warning("the sink answered %d: message requeued", status)
            channel.basic_nack(tag, requeue=True)
            self._stopping.wait(self.retry_delay)
        else:
            log.error("the sink refused a message for good (%d): dropped", status)
            channel.basic_reject(tag, requeue=False)
