"""Broker throughput: CloudEvents per second from the ingress, through the broker, to a function.

Every system delivers to the same functions-framework sink (bench/sink_function.py, a subprocess
that counts what it receives) and is timed from the first send until the sink has counted all N:

- baseline: raw pika, one BlockingConnection per publisher thread with publisher confirms, one
  basic_publish per message (persistent) to a durable queue; one consumer thread that POSTs each
  message to the sink over one urllib3 pool and acks after the POST.
- datafrost-rabbitmq: `DevPlatform` with the RabbitMQ broker (a unique broker name per run); N
  binary-mode CloudEvents POSTed to `/brokers/default` by `--clients` keep-alive threads, one
  trigger (`type = bench.event`) whose subscriber is the sink.
- datafrost-local: the same with the default durable local broker (SQLite in the data dir).
- datafrost-memory: the same with the in-memory broker (informational, not in the ratio).

The line before last is `local ratio: X` = datafrost-local events/s over baseline events/s; the
last line is `ratio: X` = datafrost-rabbitmq events/s over baseline events/s. `--stages` adds
ingress-only and dispatch-only rates (a backlog published with no consumer, then drained; the
drain is timed from when the consumer is up).
Only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pika
import urllib3

from localplatform.broker.rabbitmq import RabbitMQBroker
from localplatform.processes import free_port
from localplatform.runner import DevOptions, DevPlatform
from shared import logging as jsonlog

REPO = Path(__file__).resolve().parent.parent
SINK_SOURCE = REPO / "bench" / "sink_function.py"
EVENT_TYPE = "bench.event"
TRIGGER_NAME = "bench-sink"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
HTTP_TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)


def event(run_id: str, i: int) -> tuple[dict[str, str], bytes]:
    """One small binary-mode CloudEvent: headers and a JSON body."""
    headers = {
        "ce-specversion": "1.0",
        "ce-id": f"{run_id}-{i}",
        "ce-source": "/bench/broker",
        "ce-type": EVENT_TYPE,
        "Content-Type": "application/json",
    }
    return headers, b'{"seq":%d,"payload":"datafrost-bench"}' % i


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run target(0..count-1) in threads; re-raise the first failure."""
    errors: list[BaseException] = []

    def guarded(k: int) -> None:
        try:
            target(k)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(k,), daemon=True) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


# -- the sink ----------------------------------------------------------------------------------------
class Sink:
    """bench/sink_function.py under `python -m functions_framework`, on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "functions_framework",
                "--source",
                str(SINK_SOURCE),
                "--target",
                "handle",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=REPO,
        )
        self._http = urllib3.HTTPConnectionPool("127.0.0.1", self.port, maxsize=1, retries=False)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.count()
                return
            except urllib3.exceptions.HTTPError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("the functions-framework sink did not start") from None
                time.sleep(0.05)

    def count(self, until: int = 0, wait: float = 0.0) -> int:
        """The sink's count; with `until`, once it reaches that or `wait` seconds passed."""
        response = self._http.request(
            "GET",
            f"/?until={until}&timeout={wait}",
            timeout=urllib3.Timeout(connect=5.0, read=wait + 30.0),
        )
        return int(response.data)

    def wait_for(self, total: int, timeout: float) -> None:
        """Return as soon as the sink has counted `total` events (the sink wakes this request)."""
        deadline = time.monotonic() + timeout
        while (
            seen := self.count(until=total, wait=min(10.0, max(0.0, deadline - time.monotonic())))
        ) < total:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the sink counted {seen} events, expected {total}")

    def drain_rate(self, total: int, timeout: float) -> float:
        """Events/s from now until the count reaches `total` (what arrived before now is left out)."""
        started, first = time.perf_counter(), self.count()
        self.wait_for(total, timeout)
        return (total - first) / (time.perf_counter() - started) if total > first else float("nan")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()  # gunicorn's master stops its worker on SIGTERM
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


# -- the baseline: raw pika + plain HTTP POST --------------------------------------------------------
def _amqp_params(url: str) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.heartbeat = 0  # loopback and idle between rounds; nothing to detect
    return params


class AmqpPublisher:
    """Publisher threads, each with its own BlockingConnection and confirms, one message per publish."""

    def __init__(self, amqp_url: str, queue: str, publishers: int) -> None:
        self.queue = queue
        self._channels: list[Any] = []
        self._connections: list[Any] = []
        for _ in range(publishers):
            connection = pika.BlockingConnection(_amqp_params(amqp_url))
            channel = connection.channel()
            channel.confirm_delivery()
            self._connections.append(connection)
            self._channels.append(channel)

    def send(self, n: int, run_id: str) -> None:
        count = len(self._channels)

        def publish(k: int) -> None:
            channel = self._channels[k]
            for i in range(k, n, count):
                headers, body = event(run_id, i)
                properties = pika.BasicProperties(
                    headers={name[3:]: v for name, v in headers.items() if name.startswith("ce-")},
                    content_type=headers["Content-Type"],
                    message_id=headers["ce-id"],
                    delivery_mode=pika.DeliveryMode.Persistent,
                )
                channel.basic_publish("", self.queue, body, properties)  # returns once confirmed

        run_threads(count, publish)

    def close(self) -> None:
        for connection in self._connections:
            with contextlib.suppress(Exception):
                connection.close()


class Baseline:
    """A durable queue and one consumer thread that POSTs each message to the sink, then acks it."""

    def __init__(self, amqp_url: str, sink_url: str, prefetch: int) -> None:
        self.params = _amqp_params(amqp_url)
        self.queue = f"datafrost-bench.baseline.{uuid.uuid4().hex[:12]}"
        self.sink_url = sink_url
        self.prefetch = prefetch
        self._stop = threading.Event()
        self._consumer: threading.Thread | None = None
        self._consumer_error: BaseException | None = None
        admin = pika.BlockingConnection(self.params)
        try:
            admin.channel().queue_declare(self.queue, durable=True, arguments={"x-queue-type": "classic"})
        finally:
            admin.close()

    def start_consumer(self) -> None:
        self._consumer = threading.Thread(target=self._consume, name="baseline-consumer", daemon=True)
        self._consumer.start()

    def _consume(self) -> None:
        http = urllib3.connection_from_url(self.sink_url, maxsize=1, retries=False)
        path = urlsplit(self.sink_url).path or "/"
        connection = pika.BlockingConnection(self.params)
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=self.prefetch)

            def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
                headers = {f"ce-{k}": str(v) for k, v in (props.headers or {}).items()}
                if props.content_type:
                    headers["Content-Type"] = props.content_type
                response = http.request("POST", path, body=body, headers=headers, timeout=HTTP_TIMEOUT)
                if 200 <= response.status < 300:
                    ch.basic_ack(method.delivery_tag)
                else:
                    ch.basic_nack(method.delivery_tag, requeue=True)

            channel.basic_consume(self.queue, on_message, auto_ack=False)
            while not self._stop.is_set():
                connection.process_data_events(time_limit=0.1)
        except BaseException as exc:
            self._consumer_error = exc
            raise
        finally:
            with contextlib.suppress(Exception):
                connection.close()

    def check(self) -> None:
        if self._consumer_error is not None:
            raise RuntimeError(f"baseline consumer failed: {self._consumer_error!r}")

    def close(self) -> None:
        self._stop.set()
        if self._consumer is not None:
            self._consumer.join(timeout=10)
        with contextlib.suppress(Exception):
            admin = pika.BlockingConnection(self.params)
            admin.channel().queue_delete(self.queue)
            admin.close()


# -- DataFrost ---------------------------------------------------------------------------------------
class Ingress:
    """Keep-alive client threads POSTing binary-mode CloudEvents to the broker ingress."""

    def __init__(self, base_url: str, clients: int) -> None:
        parts = urlsplit(base_url)
        assert parts.hostname is not None and parts.port is not None
        self.clients = clients
        self._http = urllib3.HTTPConnectionPool(
            parts.hostname, parts.port, maxsize=clients, block=True, retries=False
        )

    def send(self, n: int, run_id: str) -> None:
        def post(k: int) -> None:
            for i in range(k, n, self.clients):
                headers, body = event(run_id, i)
                response = self._http.request(
                    "POST", "/brokers/default", body=body, headers=headers, timeout=HTTP_TIMEOUT
                )
                if response.status != 202:
                    raise RuntimeError(f"ingress answered {response.status}: {response.data[:200]!r}")

        run_threads(self.clients, post)


# -- the load generator ------------------------------------------------------------------------------
SendJob = tuple[str, str, str, int, int, str]  # kind ("http"/"amqp"), target, queue, threads, n, run id


class _Senders:
    """Ingress clients and AMQP publishers by target, kept (with their connections) across runs."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str, str, int], Ingress | AmqpPublisher] = {}

    def run(self, job: SendJob) -> None:
        kind, target, queue, threads, n, run_id = job
        key = (kind, target, queue, threads)
        client = self._clients.get(key)
        if client is None:
            client = Ingress(target, threads) if kind == "http" else AmqpPublisher(target, queue, threads)
            self._clients[key] = client
        client.send(n, run_id)

    def close(self) -> None:
        for client in self._clients.values():
            if isinstance(client, AmqpPublisher):
                client.close()


def _sender_process(conn: Connection) -> None:
    senders = _Senders()
    try:
        while (job := conn.recv()) is not None:
            try:
                senders.run(job)
                conn.send(None)
            except Exception as exc:
                conn.send(f"{type(exc).__name__}: {exc}")
    finally:
        senders.close()


class Sender:
    """Runs the producers (HTTP clients or pika publishers) in a child process, or in this one.

    A separate process is the default: producers are other programs, and in this process they would
    compete for the GIL with the system under test (DataFrost's gateway, broker and dispatcher).
    """

    def __init__(self, in_process: bool) -> None:
        self._local = _Senders() if in_process else None
        self._conn: Connection | None = None
        self._proc: multiprocessing.process.BaseProcess | None = None
        if not in_process:
            ctx = multiprocessing.get_context("spawn")
            self._conn, child = ctx.Pipe()
            self._proc = ctx.Process(target=_sender_process, args=(child,), name="bench-sender", daemon=True)
            self._proc.start()
            child.close()

    def run(self, job: SendJob) -> None:
        if self._local is not None:
            self._local.run(job)
            return
        assert self._conn is not None
        self._conn.send(job)
        failure = self._conn.recv()
        if failure is not None:
            raise RuntimeError(f"sender: {failure}")

    def http(self, base_url: str, clients: int) -> Callable[[int, str], None]:
        return lambda n, run_id: self.run(("http", base_url, "", clients, n, run_id))

    def amqp(self, amqp_url: str, queue: str, publishers: int) -> Callable[[int, str], None]:
        return lambda n, run_id: self.run(("amqp", amqp_url, queue, publishers, n, run_id))

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
        if self._conn is not None and self._proc is not None:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._proc.join(timeout=10)
            if self._proc.is_alive():
                self._proc.kill()


@contextlib.contextmanager
def platform(
    broker: str, data_dir: Path, broker_name: str, delete_after: bool = False
) -> Iterator[DevPlatform]:
    """A started DevPlatform whose broker is named `broker_name` (its RabbitMQ exchange and queues).

    With `delete_after`, the broker's RabbitMQ exchanges and queues are deleted after shutdown.
    """
    options = DevOptions(
        port=0,
        data_dir=data_dir,
        keep_warm=True,
        extra_env={"DATAFROST_BROKER": broker, "DATAFROST_BROKER_NAME": broker_name},
    )
    dev = DevPlatform(options)
    try:
        dev.start()
        if dev.broker is None or dev.broker.name != broker_name:
            raise RuntimeError("DevPlatform ignored DATAFROST_BROKER_NAME; the bench needs a unique name")
        yield dev
    finally:
        dev.shutdown()
        if delete_after:
            delete_topology(dev)


def create_trigger(dev: DevPlatform, sink_url: str) -> None:
    http = urllib3.PoolManager(retries=False)
    body = {"name": TRIGGER_NAME, "subscriber": sink_url, "filter": {"type": EVENT_TYPE}}
    response = http.request(
        "POST",
        f"{dev.internal_url}/brokers/default/triggers",
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        timeout=HTTP_TIMEOUT,
    )
    if response.status != 201:
        raise RuntimeError(f"trigger create answered {response.status}: {response.data[:300]!r}")


def delete_topology(dev: DevPlatform) -> None:
    """Delete the broker's exchanges and every trigger queue it knows (the registry's too)."""
    if isinstance(dev.broker, RabbitMQBroker):
        dev.broker.delete_topology()


# -- measuring ---------------------------------------------------------------------------------------
@dataclass
class Tally:
    system: str
    events: int = 0
    seconds: float = 0.0
    accept_seconds: float = 0.0
    rates: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def accept_rate(self) -> float:
        return self.events / self.accept_seconds if self.accept_seconds else 0.0


def timed_run(sink: Sink, n: int, send: Callable[[int, str], None], tally: Tally | None) -> float:
    """Send n events and wait for the sink to count them; returns events/s and adds to `tally`."""
    start_count = sink.count()
    run_id = uuid.uuid4().hex[:12]
    started = time.perf_counter()
    send(n, run_id)
    accepted = time.perf_counter()
    sink.wait_for(start_count + n, timeout=max(60.0, n / 20))
    finished = time.perf_counter()
    if tally is not None:
        tally.events += n
        tally.seconds += finished - started
        tally.accept_seconds += accepted - started
        tally.rates.append(n / (finished - started))
    return n / (finished - started)


def check_loopback(amqp_url: str) -> None:
    host = urlsplit(amqp_url).hostname
    if host not in LOOPBACK:
        sys.exit(f"--amqp-url must point at a loopback address, got {host!r}")


def print_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def end_to_end(args: argparse.Namespace, sink: Sink, sender: Sender, workdir: Path) -> list[Tally]:
    """All four systems up at once, measured in interleaved rounds."""
    with contextlib.ExitStack() as stack:
        baseline = Baseline(args.amqp_url, sink.url, args.prefetch)
        stack.callback(baseline.close)
        baseline.start_consumer()

        rabbit = stack.enter_context(
            platform(args.amqp_url, workdir / "rabbitmq", f"bench-{uuid.uuid4().hex[:12]}", delete_after=True)
        )
        create_trigger(rabbit, sink.url)

        local = stack.enter_context(platform("local", workdir / "local", "bench-local"))
        create_trigger(local, sink.url)

        memory = stack.enter_context(platform("memory", workdir / "memory", "bench-memory"))
        create_trigger(memory, sink.url)

        systems: list[tuple[Tally, Callable[[int, str], None]]] = [
            (Tally("baseline (pika+http)"), sender.amqp(args.amqp_url, baseline.queue, args.publishers)),
            (Tally("datafrost-rabbitmq"), sender.http(rabbit.internal_url, args.clients)),
            (Tally("datafrost-local"), sender.http(local.internal_url, args.clients)),
            (Tally("datafrost-memory"), sender.http(memory.internal_url, args.clients)),
        ]
        for _, send in systems:  # connections, consumers and the sink warmed up
            timed_run(sink, args.warmup, send, None)
        for round_no in range(args.rounds):
            for tally, send in systems:
                rate = timed_run(sink, args.events, send, tally)
                baseline.check()
                print(f"# round {round_no + 1}: {tally.system}: {rate:.0f} events/s", file=sys.stderr)
        return [tally for tally, _ in systems]


def stages(
    args: argparse.Namespace, sink: Sink, sender: Sender, workdir: Path
) -> list[tuple[str, float, float]]:
    """Ingress-only rate (a backlog published with no consumer), then dispatch-only (it drained)."""
    n = args.events
    timeout = max(60.0, n / 20)
    rows: list[tuple[str, float, float]] = []

    baseline = Baseline(args.amqp_url, sink.url, args.prefetch)
    try:
        publish = sender.amqp(args.amqp_url, baseline.queue, args.publishers)
        publish(args.warmup, "warmup")
        started = time.perf_counter()
        publish(n, uuid.uuid4().hex[:12])
        publish_rate = n / (time.perf_counter() - started)
        target = sink.count() + n + args.warmup
        baseline.start_consumer()
        rows.append(("baseline (pika+http)", publish_rate, sink.drain_rate(target, timeout)))
    finally:
        baseline.close()

    # A trigger's queue outlives the platform: create the trigger and stop; start without it (the
    # queue stays bound) and time the ingress; start with it again and time the drain.
    name = f"bench-{uuid.uuid4().hex[:12]}"
    with_trigger, without_trigger = workdir / "stages-trigger", workdir / "stages-ingress"
    last: DevPlatform | None = None
    try:
        with platform(args.amqp_url, with_trigger, name) as dev:
            last = dev
            create_trigger(dev, sink.url)
        with platform(args.amqp_url, without_trigger, name) as dev:
            last = dev
            ingress = sender.http(dev.internal_url, args.clients)
            ingress(args.warmup, "warmup")
            started = time.perf_counter()
            ingress(n, uuid.uuid4().hex[:12])
            accept_rate = n / (time.perf_counter() - started)
        target = sink.count() + n + args.warmup
        with platform(args.amqp_url, with_trigger, name) as dev:  # its trigger starts draining
            last = dev
            dispatch_rate = sink.drain_rate(target, timeout)
        rows.append(("datafrost-rabbitmq", accept_rate, dispatch_rate))
    finally:
        if last is not None:
            delete_topology(last)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a reduced run, under a minute")
    parser.add_argument("--events", type=int, help="events per system per round (default 4000, quick 800)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    parser.add_argument("--warmup", type=int, default=50, help="events sent before timing")
    parser.add_argument("--clients", type=int, default=4, help="ingress client threads")
    parser.add_argument("--publishers", type=int, help="baseline publisher threads (default: --clients)")
    parser.add_argument(
        "--prefetch", type=int, default=1, help="baseline prefetch (default 1, as a parallelism-1 trigger)"
    )
    parser.add_argument("--stages", action="store_true", help="also time ingress and dispatch separately")
    parser.add_argument(
        "--in-process-senders",
        action="store_true",
        help="run the HTTP clients and pika publishers in this process instead of a child process",
    )
    parser.add_argument("--amqp-url", default=os.environ.get("DATAFROST_BENCH_AMQP_URL", DEFAULT_AMQP_URL))
    args = parser.parse_args(argv)
    args.events = args.events or (800 if args.quick else 4000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.publishers = args.publishers or args.clients
    check_loopback(args.amqp_url)
    jsonlog.configure("bench", "WARNING")

    with contextlib.ExitStack() as stack:
        sink = Sink()
        stack.callback(sink.close)
        sender = Sender(in_process=args.in_process_senders)
        stack.callback(sender.close)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="datafrost-bench-")))
        tallies = end_to_end(args, sink, sender, workdir)
        stage_rows = stages(args, sink, sender, workdir) if args.stages else []

    senders = "in this process" if args.in_process_senders else "in a child process"
    print(
        f"broker throughput: {args.events} events x {args.rounds} round(s); senders {senders}: "
        f"{args.clients} ingress clients, {args.publishers} baseline publishers; "
        f"baseline prefetch {args.prefetch}; trigger parallelism 1"
    )
    print_table(
        ("system", "events", "seconds", "events/s", "median/s", "accepted/s"),
        [
            (
                t.system,
                str(t.events),
                f"{t.seconds:.2f}",
                f"{t.rate:.0f}",
                f"{statistics.median(t.rates):.0f}",
                f"{t.accept_rate:.0f}",
            )
            for t in tallies
        ],
    )
    if stage_rows:
        print()
        print_table(
            ("stage (no consumer / backlog drain)", "ingress-only/s", "dispatch-only/s"),
            [(name, f"{a:.0f}", f"{d:.0f}") for name, a, d in stage_rows],
        )
    baseline, rabbit, local = tallies[0], tallies[1], tallies[2]
    print(f"local ratio: {local.rate / baseline.rate:.2f}")
    print(f"ratio: {rabbit.rate / baseline.rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
