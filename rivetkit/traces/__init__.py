"""Traces: spans of an actor's actions, hooks, queue receives and schedule runs.

Each actor records its spans in its own KV, in the layout and encoding of npm
``@rivetkit/traces@2.3.19`` (:mod:`.schema`), bounded by ``ActorOptions.traces_max_bytes``
(oldest chunks dropped first). The inspector's trace query reads them back: over HTTP as
OTLP JSON (``GET /inspector/traces``), over the inspector WebSocket as
``@rivetkit/traces``' ``ReadRangeWire`` bytes (:mod:`rivetkit.traces.query`).

Tracing is on by default; ``ActorOptions(traces=False)`` turns it off for an actor, the
environment variable ``RIVETKIT_TRACES=0`` for the whole process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rivetkit.traces.recorder import ActorTraces, Span, current_span

if TYPE_CHECKING:
    from rivetkit.drivers.base import Driver
    from rivetkit.runtime.instance import ActorInstance

__all__ = [
    "ENV_SWITCH",
    "ActorTraces",
    "DriverStore",
    "Span",
    "current_span",
    "enabled",
    "traced",
    "traces_for",
]

#: The environment variable that turns tracing off for the process (``0``, ``false``, ``off``).
ENV_SWITCH = "RIVETKIT_TRACES"


# The environment's own dict, where the variable is usually missing: a miss there is a
# dict lookup, where os.environ.get raises and catches a KeyError (at every actor's start).
_ENVIRON = os.environ
_ENV_DATA: dict[Any, str] | None = getattr(os.environ, "_data", None)
_ENV_KEY: Any = getattr(os.environ, "encodekey", lambda key: key)(ENV_SWITCH)


def enabled() -> bool:
    """False when ``RIVETKIT_TRACES`` says off."""
    data = _ENV_DATA
    if data is not None and os.environ is _ENVIRON and _ENV_KEY not in data:
        return True
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "off", "no")


class DriverStore:
    """The traces' view of one actor's KV through its driver; with the actor's ``name`` and
    ``key``, also who the actor is (the recorder's ``actor``: no tuple of its own)."""

    __slots__ = ("actor_id", "driver", "key", "name")

    def __init__(
        self, driver: Driver, actor_id: str, name: str = "", key: list[str] | None = None
    ) -> None:
        self.driver = driver
        self.actor_id = actor_id
        self.name = name
        self.key: list[str] = [] if key is None else key

    # write and list return the driver's coroutine (no coroutine of their own to await it).

    def write(
        self, puts: list[tuple[bytes, bytes]], deletes: list[bytes]
    ) -> Coroutine[Any, Any, None]:
        """Apply ``deletes`` then ``puts`` atomically (awaitable)."""
        return self.driver.kv_write(self.actor_id, puts=puts, deletes=deletes)

    def put_soon(self, puts: list[tuple[bytes, bytes]], done: Callable[[bool, Any], None]) -> bool:
        """Put ``puts`` without awaiting (the driver's ``kv_put_soon``): ``done(ok, error)``
        on the loop once committed or failed; False, doing nothing, when the driver cannot."""
        return self.driver.kv_put_soon(self.actor_id, puts, done)

    def list(
        self, start: bytes, end: bytes | None, *, reverse: bool = False, limit: int | None = None
    ) -> Coroutine[Any, Any, list[tuple[bytes, bytes]]]:
        """Entries with ``start <= key < end`` in key order (``reverse``: last first;
        awaitable)."""
        return self.driver.kv_list(self.actor_id, start, end, reverse=reverse, limit=limit)


def traces_for(instance: ActorInstance) -> ActorTraces | None:
    """The recorder of a starting actor, or None when tracing is off for it."""
    options = instance.options
    if not getattr(options, "traces", True) or not enabled():
        return None
    clock = instance.clock
    store = DriverStore(instance.driver, instance.actor_id, instance.name, instance.key)
    return ActorTraces(
        store,
        max_bytes=getattr(options, "traces_max_bytes", 1024 * 1024),
        clock_ns=time.time_ns if clock is time.time else (lambda: int(clock() * 1e9)),
        actor=store,
    )


class traced:
    """``with traced(instance.traces, "hook", "on_wake"):`` records the block as a span
    (status ``ERROR`` when it raises); nothing when ``traces`` is None."""

    __slots__ = ("_extra", "_kind", "_name", "_span", "_traces")

    def __init__(
        self,
        traces: ActorTraces | None,
        kind: str,
        name: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._traces = traces
        self._kind = kind
        self._name = name
        self._extra = extra
        self._span: Span | None = None

    def __enter__(self) -> Span | None:
        if self._traces is not None and not self._traces.closed:
            self._span = self._traces.start(self._kind, self._name, self._extra)
        return self._span

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        if span is not None:
            if error is not None:
                span.fail(error)
            span.end()
