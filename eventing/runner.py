"""`datafrost dev`: the whole platform on one machine, from the same function registry as Knative."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from eventing.broker.base import Broker
from eventing.broker.memory import MemoryBroker
from eventing.gateway import BROKER_PATH, Gateway
from eventing.processes import ProcessManager
from eventing.storage_wiring import start_storage
from eventing.trigger import Trigger
from eventing.trigger_store import TriggerStore
from functions.registry import all_specs
from functions.spec import DEAD_LETTERS_FUNCTION, FunctionSpec
from shared.settings import from_env

log = logging.getLogger("datafrost.dev")


@dataclass(frozen=True)
class DevOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path(".datafrost")
    broker: str = "memory"
    idle_seconds: float = 60.0
    keep_warm: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)


def make_broker(url: str, name: str = "default", queue_type: str = "classic") -> Broker:
    if url == "memory":
        return MemoryBroker(name)
    if url.startswith(("amqp://", "amqps://")):
        import pika.exceptions

        from eventing.broker.rabbitmq import BrokerUnavailable, RabbitMQBroker

        try:
            return RabbitMQBroker(url, name=name, queue_type=queue_type)
        except (pika.exceptions.AMQPError, OSError) as exc:
            where = url.rsplit("@", 1)[-1]  # never print the credentials
            raise BrokerUnavailable(f"cannot connect to RabbitMQ at {where}: {type(exc).__name__}") from None
    raise ValueError(f"--broker must be 'memory' or an amqp:// URL, got {url!r}")


def function_triggers(specs: tuple[FunctionSpec, ...], base_url: str) -> list[Trigger]:
    """The registry's triggers, pointed at the functions through the gateway (which activates them)."""
    triggers = []
    for spec in specs:
        for t in spec.triggers:
            delivery = t.delivery
            if t.dead_letters and spec.name != DEAD_LETTERS_FUNCTION:
                delivery = replace(delivery, dead_letter_sink=f"{base_url}/{DEAD_LETTERS_FUNCTION}/")
            triggers.append(
                Trigger(
                    name=spec.trigger_name(t),
                    subscriber=f"{base_url}/{spec.name}{t.path}",
                    filter=dict(t.filter),
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
        self.server: BaseWSGIServer | None = None
        self.broker: Broker | None = None
        self.processes: ProcessManager | None = None
        self._thread: threading.Thread | None = None
        self._storage: list[Any] = []

    @property
    def internal_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    @property
    def public_url(self) -> str:
        assert self.server is not None
        host = self.options.host if self.options.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.server.server_port}"

    def start(self) -> None:
        configured = from_env({**os.environ, **self.options.extra_env})
        broker = make_broker(self.options.broker, configured.broker_name, configured.amqp_queue_type)
        self.broker = broker
        store = TriggerStore(self.data_dir / "triggers.json")
        # Bind first: function triggers and K_SINK need the gateway's port; the app is set below.
        self.server = make_server(self.options.host, self.options.port, _starting, threaded=True)
        env = {
            **os.environ,
            **self.options.extra_env,
            "DATAFROST_DATA_DIR": str(self.data_dir),
            "K_SINK": self.internal_url + BROKER_PATH,
            "DATAFROST_GATEWAY_URL": self.internal_url,
        }
        self.processes = ProcessManager(self.specs, env, self.options.idle_seconds, self.options.keep_warm)
        registry_triggers = function_triggers(self.specs, self.internal_url)
        self.server.app = Gateway(
            broker,
            self.processes,
            store,
            max_event_bytes=from_env(env).max_event_bytes,
            managed_triggers=frozenset(t.name for t in registry_triggers),
        )
        for trigger in [*registry_triggers, *store.load()]:
            broker.set_trigger(trigger)
        self._storage = start_storage(from_env(env), self.internal_url, self.data_dir, broker)
        self.processes.start()
        self._thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop taking requests, stop dispatching, stop every function process."""
        for part in self._storage:
            part.stop()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.broker is not None:
            self.broker.close()
        if self.processes is not None:
            self.processes.shutdown()


def _starting(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "application/json")])
    return [b'{"error": "datafrost is starting"}']
