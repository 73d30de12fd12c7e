"""Bodies rendered once per state of the store, for the endpoints that show the
whole fleet (``/metrics``, ``/api/v1/hosts``).

With 500 hosts, rendering is the cost (prometheus_client writes ~11,000 sample
lines; pydantic checks 500 hosts), and what they show only changes when a round
is stored, alerts are evaluated or mail is sent. Each request reads the store's
generation (``store.browse.generation``, one small query, so a round stored by
another process counts too) and renders again only when it moved.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any


class BodyCache:
    """The last rendering of each named body and the key it was rendered for."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._entries: dict[str, tuple[Hashable, Any]] = {}

    def get(self, name: str, key: Hashable, render: Callable[[], Any]) -> Any:
        """The body for ``key``; ``render()`` runs once for a new key while
        requests for the same name wait for it (they would render the same)."""
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            entry = self._entries.get(name)
            if entry is not None and entry[0] == key:
                return entry[1]
            value = render()
            self._entries[name] = (key, value)
            return value
