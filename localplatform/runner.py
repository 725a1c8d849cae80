"""`datafrost dev`: the whole platform on one machine, from the same function registry as Knative."""

from __future__ import annotations

import logging
import os
import re
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from eventing.trigger import Trigger
from functions.registry import BROKER_PATH, all_specs, dead_letter_sink, largest_body
from functions.spec import FunctionSpec
from localplatform import platform_file
from localplatform.auth_wiring import AuthSetup, prepare_auth, service_credentials, storage_events_token_env
from localplatform.broker.base import Broker, BrokerUnavailable, TriggerError
from localplatform.broker.durable import DurableBroker
from localplatform.broker.memory import MemoryBroker
from localplatform.ext_authz import ExtAuthz
from localplatform.gateway import Gateway
from localplatform.http_server import HttpServer
from localplatform.metrics_aggregate import LastExports
from localplatform.platform_file import RunningPlatform
from localplatform.processes import ProcessManager, free_port
from localplatform.sink_refs import SinkRefs
from localplatform.storage_wiring import start_storage
from localplatform.trigger_store import TriggerFileError, TriggerStore
from localplatform.upkeep import start_upkeep
from shared import metrics
from shared.auth.dev_issuer import DEMO_USER
from shared.http_limits import EDGE
from shared.lazy import once
from shared.settings import Settings, from_env

log = logging.getLogger("datafrost.dev")


@dataclass(frozen=True)
class DevOptions:
    """How `datafrost dev` runs; `extra_env` overrides the environment the settings are read from
    (the CLI's --broker, --store and --db arrive there as DATAFROST_BROKER, _STORE and _<NAME>_DB)."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path(".datafrost")
    idle_seconds: float = 60.0
    keep_warm: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)


BROKER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def make_broker(url: str, data_dir: Path, name: str = "default", queue_type: str = "classic") -> Broker:
    """`local`: the durable embedded broker, its queues in `<data_dir>/broker/<name>.sqlite3`;
    `memory`: in memory only (tests, benchmarks); an amqp:// URL: RabbitMQ."""
    if BROKER_NAME.fullmatch(name) is None:
        raise ValueError(f"the broker name must be letters, digits, '.', '_' or '-', got {name!r}")
    if url == "local":
        return DurableBroker(data_dir / "broker" / f"{name}.sqlite3", name)
    if url == "memory":
        return MemoryBroker(name)
    if url.startswith(("amqp://", "amqps://")):
        import pika.exceptions

        from localplatform.broker.rabbitmq import RabbitMQBroker

        try:
            return RabbitMQBroker(url, name=name, queue_type=queue_type)
        except (pika.exceptions.AMQPError, OSError) as exc:
            where = url.rsplit("@", 1)[-1]  # never print the credentials
            raise BrokerUnavailable(f"cannot connect to RabbitMQ at {where}: {type(exc).__name__}") from None
    raise ValueError(f"--broker must be 'local', 'memory' or an amqp:// URL, got {url!r}")


def function_triggers(specs: tuple[FunctionSpec, ...], base_url: str, config: Settings) -> list[Trigger]:
    """The registry's triggers, pointed at the functions through the gateway (which activates them)."""
    sink = dead_letter_sink()
    triggers = []
    for spec in specs:
        for t in spec.triggers:
            delivery = t.delivery
            if t.dead_letters and sink is not None and spec.name != sink.name:
                delivery = replace(delivery, dead_letter_sink=f"{base_url}/{sink.name}/")
            triggers.append(
                Trigger(
                    name=spec.trigger_name(t),
                    subscriber=f"{base_url}/{spec.name}{t.path}",
                    filter=t.resolved_filter(config),
                    delivery=delivery,
                    parallelism=t.parallelism,
                )
            )
    return triggers


class DevPlatform:
    """Broker, function processes and gateway, started and stopped together."""

    def __init__(self, options: DevOptions) -> None:
        self.options = options
        self.specs = all_specs()
        self.data_dir = options.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.server: HttpServer | None = None
        self.internal_server: HttpServer | None = None
        self.auth = AuthSetup({}, None)
        self.settings = from_env({**os.environ, **options.extra_env})  # what every process reads
        self.broker: Broker | None = None
        self.processes: ProcessManager | None = None
        self._threads: list[threading.Thread] = []
        self._storage: list[Any] = []
        self._recorded = False  # platform.json written

    @property
    def internal_url(self) -> str:
        """The cluster-local listener: loopback only, no auth check (triggers, K_SINK, the watcher)."""
        assert self.internal_server is not None
        return f"http://127.0.0.1:{self.internal_server.port}"

    @property
    def public_url(self) -> str:
        """The public listener: every request passes the authz check, as behind Kourier."""
        assert self.server is not None
        host = self.options.host if self.options.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.server.port}"  # IPv6: bracketed

    def start(self) -> None:
        configured = self.settings
        broker = make_broker(
            configured.broker_url, self.data_dir, configured.broker_name, configured.amqp_queue_type
        )
        self.broker = broker
        store = TriggerStore(self.data_dir / "triggers.json")
        # Bind first: triggers, K_SINK and the issuer URL need the ports; the apps are set below.
        max_body = largest_body(configured)
        self.server = HttpServer(self.options.host, self.options.port, _starting, max_body, EDGE)
        self.internal_server = self._internal_listener(max_body)
        store.refs = SinkRefs(self.internal_url, frozenset(spec.name for spec in self.specs))
        self.auth = prepare_auth(configured, self.public_url, self.internal_url, self.data_dir)
        env = {
            **os.environ,
            **self.options.extra_env,
            **self.auth.env,
            **storage_events_token_env(configured, self.data_dir),
            "DATAFROST_DATA_DIR": str(self.data_dir),
            "K_SINK": self.internal_url + BROKER_PATH,
            "DATAFROST_GATEWAY_URL": self.internal_url,
            "DATAFROST_PUBLIC_URL": self.public_url,
        }
        self.processes = ProcessManager(self.specs, env, self.options.idle_seconds, self.options.keep_warm)
        settings = self.settings = from_env(env)
        registry_triggers = function_triggers(self.specs, self.internal_url, settings)
        credentials = service_credentials(settings, self.auth, self.internal_url)
        broker.dispatcher.credentials = credentials
        last_exports = LastExports(metrics.KEPT_WHILE_STOPPED)  # both listeners show the same
        for server, authz in ((self.server, ExtAuthz(self.processes) if settings.auth_enabled else None),
                              (self.internal_server, None)):  # fmt: skip
            gateway = Gateway(
                broker,
                self.processes,
                store,
                settings=settings,
                managed_triggers=frozenset(t.name for t in registry_triggers),
                authz=authz,
                credentials=credentials,
                loopback_hosts_only=server is self.internal_server,
                local_status_secret=self.auth.realm.dev_token_secret if self.auth.realm else None,
                last_exports=last_exports,
            )
            gateway.public_origin, gateway.internal_origin = self.public_url, self.internal_url
            server.app = gateway
        self.processes.before_idle_stop = gateway.scrape  # a stopping function's last state is kept
        broker.dispatcher.max_reply_bytes = settings.max_event_bytes  # a reply is an event like any other
        for trigger in registry_triggers:
            broker.set_trigger(trigger)
        start_stored_triggers(broker, store, gateway)  # either listener's gateway judges alike
        broker.log_unclaimed()
        realm = self.auth.realm
        owners = [DEMO_USER] if realm is not None and DEMO_USER in realm.users else []
        self._storage = start_storage(settings, self.internal_url, self.data_dir, credentials, owners)
        _LIVE.add(self)
        _register_queue_depth()
        self.processes.start()
        # where the CLI finds this platform (no --url needed), written before the first request is
        # answered: whoever saw /healthz answer can read it
        platform_file.write(self.data_dir, RunningPlatform(self.public_url, self.internal_url, os.getpid()))
        self._recorded = True
        for name, server in (("gateway", self.server), ("gateway-internal", self.internal_server)):
            thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._storage += start_upkeep(settings, broker)  # reconciler pings, the notification probe

    def _internal_listener(self, max_body: int) -> HttpServer:
        """The internal listener keeps its port across restarts. It is bound as the server binds: cheroot
        sets SO_REUSEADDR for a port it is given (never for port 0), and Linux lets a restart re-bind a
        port whose old connections wait in TIME-WAIT only when they had it too, so a new port is chosen
        here and given, never left to port 0. A port taken by another program meanwhile gives way to a
        free one (stored triggers name functions, not this port)."""
        remembered = self.data_dir / "internal-port"
        try:
            candidates = [int(remembered.read_text())]
            candidates = [p for p in candidates if 0 < p < 65536]  # 0 would bind without SO_REUSEADDR
        except (OSError, ValueError):
            candidates = []
        candidates += [free_port() for _ in range(3)]  # another program may take one before the bind
        for port in candidates:
            try:
                server = HttpServer("127.0.0.1", port, _starting, max_body, EDGE)
            except OSError:  # in use
                continue
            remembered.write_text(str(server.port))
            return server
        raise OSError(f"no free port for the cluster-local listener (tried {candidates})")

    def backlog(self) -> dict[str, int]:
        """Events waiting per trigger (empty when the broker cannot be read right now)."""
        try:
            return self.broker.backlog() if self.broker is not None else {}
        except Exception as exc:  # a scrape must not fail because RabbitMQ is briefly unreachable
            log.warning("cannot read the broker's backlog: %s", exc)
            return {}

    def shutdown(self) -> None:
        """Stop taking requests, stop dispatching, stop every function process."""
        _LIVE.discard(self)
        for part in self._storage:
            part.stop()
        for server in (self.server, self.internal_server):
            if server is not None:
                server.shutdown()
        if self.broker is not None:
            self.broker.close()
        if self.processes is not None:
            self.processes.shutdown()
        if self._recorded:  # last: until here a second `datafrost dev` on this data dir is refused
            platform_file.remove(self.data_dir, os.getpid())


def start_stored_triggers(broker: Broker, store: TriggerStore, gateway: Gateway) -> None:
    """Start the triggers kept in the data dir; one that is invalid now, or cannot start, is reported
    (with how to remove it) and left out: the platform starts without it."""
    try:
        stored = store.load()
    except TriggerFileError as exc:
        log.error("no stored triggers started: %s (fix or remove that file)", exc)
        return
    unusable = [(u.name, u.reason) for u in stored.unusable]
    for trigger in stored.triggers:
        problem = gateway.trigger_problem(trigger)
        if problem is not None:
            unusable.append((trigger.name, problem))
            continue
        try:
            broker.set_trigger(trigger)
        except TriggerError as exc:
            unusable.append((trigger.name, str(exc)))
    for name, reason in unusable:
        log.error(
            "stored trigger %s in %s was not started: %s; `datafrost trigger delete %s` removes it",
            name,
            store.path,
            reason,
            name,
        )


_LIVE: weakref.WeakSet[DevPlatform] = weakref.WeakSet()  # platforms running in this process


@once
def _register_queue_depth() -> None:
    """One gauge per process, over every platform it runs (tests and the benchmark run several)."""
    metrics.register_gauge(
        metrics.BROKER_QUEUE_DEPTH,
        "Events waiting per trigger: queued or being delivered, not yet acknowledged.",
        "trigger",
        lambda: {trigger: n for platform in list(_LIVE) for trigger, n in platform.backlog().items()},
    )


def _starting(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "application/json")])
    return [b'{"error": "datafrost is starting"}']
