"""How a function declares itself: what it consumes and emits, its triggers, scaling and env."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from eventing.trigger import DeliverySpec

FunctionKind = Literal["http", "cloudevent"]
FUNCTION_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
TARGET = "handle"  # every function module exposes its functions-framework target under this name


# The one place a function's name becomes its code: the local runner, func's entry and the
# manifests all call these (they need no import of the function itself, which keeps cold starts short).
def function_package(name: str) -> str:
    """The folder under functions/ (a `-` in the name is a `_` in the folder)."""
    return name.replace("-", "_")


def function_module(name: str) -> str:
    """The module that holds the function's SPEC and its target."""
    return f"functions.{function_package(name)}.main"


def relative_source(name: str) -> str:
    """FUNCTION_SOURCE as the image sets it: relative to the project root, POSIX separators."""
    return f"functions/{function_package(name)}/main.py"


def function_source(name: str) -> Path:
    """The file functions-framework loads (FUNCTION_SOURCE), in this checkout or installation."""
    return PROJECT_ROOT / relative_source(name)


DEAD_LETTERS_FUNCTION = "dead-letters"


@dataclass(frozen=True)
class TriggerSpec:
    """One subscription of a function: exact-match attribute filters and how to deliver."""

    name: str  # the Knative Trigger is named "<function>-<name>"
    filter: Mapping[str, str]
    path: str = "/"
    delivery: DeliverySpec = field(default_factory=DeliverySpec)
    parallelism: int = 1
    dead_letters: bool = True  # send exhausted events to the dead-letters function


@dataclass(frozen=True)
class Scaling:
    """Knative autoscaling for the function's Service (min 0: scale to zero)."""

    min_scale: int = 0
    max_scale: int = 10
    target_concurrency: int = 10
    container_concurrency: int = 0  # 0: no hard limit
    timeout_seconds: int = 300


@dataclass(frozen=True)
class FunctionSpec:
    """Everything the local runner and the Knative manifests need to know about one function."""

    name: str
    kind: FunctionKind
    description: str
    consumes: tuple[str, ...] = ()
    emits: tuple[str, ...] = ()
    triggers: tuple[TriggerSpec, ...] = ()
    scaling: Scaling = field(default_factory=Scaling)
    env: Mapping[str, str] = field(default_factory=dict)
    public: bool = True  # reachable through the gateway by path and host
    # Posts events to the broker itself at K_SINK (a SinkBinding on Knative), not only as replies.
    uses_sink: bool = False

    def __post_init__(self) -> None:
        if not FUNCTION_NAME.match(self.name):
            raise ValueError(f"function name {self.name!r} must be lower-case letters, digits and '-'")

    @property
    def module(self) -> str:
        return function_module(self.name)

    @property
    def source(self) -> Path:
        return function_source(self.name)

    def trigger_name(self, trigger: TriggerSpec) -> str:
        return f"{self.name}-{trigger.name}"
