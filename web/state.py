"""What the application holds for its lifetime: the instance, its ledger, the clock, caches."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from flask import current_app
from sqlalchemy import func, select

from store.instance import Instance
from store.ledger import Ledger
from store.models import Item
from web.overview import ItemRow, load_items
from web.settings import Deadlines
from web.station_auth import StationKeys


class NonceCache:
    """Nonces of signed station requests seen within the clock window (one process).

    A replayed request is refused; one that reaches another process is harmless:
    events are idempotent (a replay is a ``duplicate``), reads are reads.
    """

    def __init__(self, window: float, limit: int = 200_000):
        self.window = window
        self.limit = limit
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._seen:
                oldest, at = next(iter(self._seen.items()))
                if now - at <= 2 * self.window and len(self._seen) < self.limit:
                    break
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


@dataclass
class WebState:
    instance: Instance
    ledger: Ledger
    hasher: PasswordHasher
    deadlines: Deadlines
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    nonces: NonceCache = field(default_factory=lambda: NonceCache(300))
    stations: StationKeys = field(default_factory=StationKeys)
    cache: dict[Any, OrderedDict[Any, Any]] = field(default_factory=dict)
    cache_lock: threading.Lock = field(default_factory=threading.Lock)
    computing: dict[Any, threading.Lock] = field(default_factory=dict)

    def keys_changed(self) -> None:
        """After a key is registered, rotated or revoked here: no cache may keep the old registry."""
        self.stations.forget()
        self.ledger.keyring(refresh=True)

    def item_states(self, exam: str, size: int | None = None) -> dict[str, dict[str, Any]]:
        """Every item's custody state, shared by all requests until the log grows (do not modify)."""
        size = self.ledger.size() if size is None else size
        return self.cached(("states", exam, size), lambda: self.ledger.item_states(exam),  # type: ignore[no-any-return]
                           keep=2)

    def items(self, exam: str) -> list[ItemRow]:
        """Every item of ``exam`` as the overview reads it, shared until one is added or removed (do not modify)."""
        with self.instance.db.session() as s:
            listed = tuple(s.execute(select(func.count(Item.id), func.max(Item.id)).where(Item.exam == exam)).one())
        return self.cached(("items", exam, listed), lambda: load_items(self.instance, exam),  # type: ignore[no-any-return]
                           keep=2)

    def now(self) -> datetime:
        return self.clock()

    def exam(self) -> str:
        return self.instance.current_exam()

    def cached(self, key: tuple[Any, ...], compute: Callable[[], Any], keep: int = 16) -> Any:
        """A small per-process cache; callers put what invalidates the value into ``key``.

        It keeps the ``keep`` most recently used values of each kind (``key[0]``): the overviews of fifty
        sites' officers do not push out the city's items and custody states that each of their pages needs.
        A value is computed once: requests that want it meanwhile (every officer's page when the log has
        just grown) wait for it.
        """
        with self.cache_lock:
            values = self.cache.setdefault(key[0], OrderedDict())
            if key in values:
                values.move_to_end(key)
                return values[key]
            computing = self.computing.setdefault(key, threading.Lock())
        with computing:
            try:
                with self.cache_lock:
                    values = self.cache.setdefault(key[0], OrderedDict())
                    if key in values:  # computed while this request waited
                        values.move_to_end(key)
                        return values[key]
                value = compute()
                with self.cache_lock:
                    values = self.cache.setdefault(key[0], OrderedDict())
                    values[key] = value
                    while len(values) > keep:
                        values.popitem(last=False)
                return value
            finally:
                with self.cache_lock:
                    if self.computing.get(key) is computing:
                        del self.computing[key]


def state() -> WebState:
    return current_app.extensions["custody"]  # type: ignore[no-any-return]
