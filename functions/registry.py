"""Every function DataFrost runs, declared once: the local runner and the Knative manifests read this."""

from __future__ import annotations

import importlib
from functools import cache

from functions.spec import FunctionSpec

# One line per function; its folder functions/<name>/main.py holds SPEC and the `handle` target.
FUNCTION_MODULES = (
    "functions.storage_events.main",
    "functions.upload.main",
    "functions.inspect.main",
    "functions.thumbnail.main",
    "functions.catalog.main",
    "functions.dead_letters.main",
    "functions.event_display.main",
    "functions.authz.main",
)


@cache
def all_specs() -> tuple[FunctionSpec, ...]:
    """Import each function module for its SPEC (the handler's own dependencies load lazily)."""
    specs = tuple(importlib.import_module(module).SPEC for module in FUNCTION_MODULES)
    names = [s.name for s in specs]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"functions declared twice: {', '.join(sorted(duplicates))}")
    return specs


def spec(name: str) -> FunctionSpec | None:
    return next((s for s in all_specs() if s.name == name), None)
