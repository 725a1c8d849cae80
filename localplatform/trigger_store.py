"""Extra triggers (`datafrost trigger create`), kept in the data dir so they survive restarts."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from eventing.trigger import Trigger


class TriggerStore:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def load(self) -> list[Trigger]:
        if not self._path.exists():
            return []
        try:
            raw = json.loads(self._path.read_text())
            return [Trigger.from_json(t) for t in raw.get("triggers", [])]
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{self._path} is not a valid trigger file: {exc}") from None

    def _save(self, triggers: list[Trigger]) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"triggers": [t.to_json() for t in triggers]}, indent=2, sort_keys=True))
        os.replace(tmp, self._path)

    def put(self, trigger: Trigger) -> None:
        with self._lock:
            triggers = [t for t in self.load() if t.name != trigger.name]
            self._save([*triggers, trigger])

    def remove(self, name: str) -> bool:
        with self._lock:
            triggers = self.load()
            kept = [t for t in triggers if t.name != name]
            if len(kept) == len(triggers):
                return False
            self._save(kept)
            return True
