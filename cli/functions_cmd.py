"""`datafrost functions`: the registry as a table: each function, its triggers and scaling."""

from __future__ import annotations

import argparse
import os

from cli.common import print_table
from functions.registry import all_specs
from shared.settings import from_env


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("functions", help="list functions, their triggers and scaling")
    parser.set_defaults(run=run)


def _filters(filter_: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(filter_.items())) or "(all events)"


def run(args: argparse.Namespace) -> int:
    config = from_env(dict(os.environ))  # filters name the buckets this environment configures
    rows = [("FUNCTION", "KIND", "SCALE", "TRIGGER", "FILTER")]
    for spec in all_specs():
        scale = f"{spec.scaling.min_scale}..{spec.scaling.max_scale}"
        if not spec.triggers:
            rows.append((spec.name, spec.kind, scale, "-", "-"))
        for t in spec.triggers:
            rows.append(
                (spec.name, spec.kind, scale, spec.trigger_name(t), _filters(t.resolved_filter(config)))
            )
    print_table(rows)
    return 0
