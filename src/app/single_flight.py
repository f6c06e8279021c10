"""Single-flight: concurrent calls for the same key run the work once, and every caller gets that one result.

A cache miss on a busy page would otherwise send one query per waiting thread. This is per process: each gunicorn
sync worker is a process of its own, so a fleet runs at most one query per key per worker at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import current_app

T = TypeVar("T")


@dataclass
class _Flight:
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


class SingleFlight:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}

    def run(self, key: Hashable, work: Callable[[], T]) -> T:
        """`work()`, unless a call for `key` is under way: then wait for it and return its value (or raise its
        error)."""
        with self._lock:
            flight = self._flights.get(key)
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leading:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value
        try:
            flight.value = work()
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
        return flight.value


def single_flight(key: Hashable, work: Callable[[], T]) -> T:
    """`SingleFlight.run` on the app's own instance (one per app, so tests' apps do not share flights)."""
    flights: SingleFlight = current_app.extensions.setdefault("pronostico.single_flight", SingleFlight())
    return flights.run(key, work)
