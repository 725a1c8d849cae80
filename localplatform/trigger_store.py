"""Extra triggers (`datafrost trigger create`), kept in the data dir so they survive restarts.

The file is kept as written: a stored trigger that is no longer valid (made by an older version with
looser rules, or edited by hand) is reported by `load` with its reason, left in the file, and can still
be replaced or deleted by name. A sink on this platform is kept as a ref to its function
(`localplatform.sink_refs`) and resolved to the current cluster-local URL as it is loaded.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventing.trigger import Trigger
from localplatform.sink_refs import SinkRefs


class TriggerFileError(ValueError):
    """The trigger file cannot be read as a list of triggers; it is left untouched."""


@dataclass(frozen=True)
class Unusable:
    """A stored trigger that cannot run, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class Stored:
    triggers: list[Trigger]
    unusable: list[Unusable]


class TriggerStore:
    def __init__(self, path: Path, refs: SinkRefs | None = None) -> None:
        self.path = path
        self.refs = refs  # set once the cluster-local listener is bound; None keeps sinks as URLs
        self._lock = threading.Lock()

    def _entries(self) -> list[Any]:
        """The stored entries as JSON values; TriggerFileError when the file is not a trigger file."""
        if not self.path.exists():
            return []
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise TriggerFileError(f"{self.path} is not a valid trigger file: {exc}") from None
        entries = raw.get("triggers") if isinstance(raw, dict) else None
        if not isinstance(entries, list):
            raise TriggerFileError(f'{self.path} is not a valid trigger file: no "triggers" list')
        return entries

    def load(self) -> Stored:
        """The stored triggers that are valid, and the others with their reason."""
        stored = Stored([], [])
        for position, entry in enumerate(self._entries(), start=1):
            name = _name_of(entry) or f"#{position}"
            try:
                running = self.refs.running(entry) if self.refs is not None else entry
                stored.triggers.append(Trigger.from_json(running))
            except (ValueError, TypeError) as exc:
                stored.unusable.append(Unusable(name, str(exc)))
        return stored

    def _save(self, entries: list[Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"triggers": entries}, indent=2, sort_keys=True))
        os.replace(tmp, self.path)

    def entry(self, name: str) -> Any | None:
        """The stored JSON of the trigger `name`, None when there is none."""
        with self._lock:
            return next((e for e in self._entries() if _name_of(e) == name), None)

    def put(self, trigger: Trigger) -> None:
        entry = trigger.to_json()
        self.put_entry(trigger.name, self.refs.stored(entry) if self.refs is not None else entry)

    def put_entry(self, name: str, entry: Any) -> None:
        """Store `entry` as the trigger `name` (replacing one of that name); the others stay as written."""
        with self._lock:
            entries = [e for e in self._entries() if _name_of(e) != name]
            self._save([*entries, entry])

    def remove(self, name: str) -> bool:
        with self._lock:
            entries = self._entries()
            kept = [e for e in entries if _name_of(e) != name]
            if len(kept) == len(entries):
                return False
            self._save(kept)
            return True


def _name_of(entry: Any) -> str | None:
    name = entry.get("name") if isinstance(entry, dict) else None
    return name if isinstance(name, str) else None
