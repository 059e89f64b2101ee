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
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rivetkit.traces.recorder import CHUNK_AGE, ActorTraces, Span, current_span
from rivetkit.traces.store import DriverStore

if TYPE_CHECKING:
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
_new = object.__new__


def enabled() -> bool:
    """False when ``RIVETKIT_TRACES`` says off."""
    data = _ENV_DATA
    if data is not None and os.environ is _ENVIRON and _ENV_KEY not in data:
        return True
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "off", "no")


def traces_for(instance: ActorInstance) -> ActorTraces | None:
    """The recorder of a starting actor, or None when tracing is off for it."""
    options = instance.options
    if not getattr(options, "traces", True):
        return None
    data = _ENV_DATA  # (enabled()'s common case, without its frame)
    if (data is None or os.environ is not _ENVIRON or _ENV_KEY in data) and not enabled():
        return None
    clock = instance.clock
    # (DriverStore's fields set here: its __init__ is a Python frame per actor)
    store: DriverStore = _new(DriverStore)
    store.driver = instance.driver
    store.actor_id = instance.actor_id
    store.name = instance.name
    store.key = instance.key
    # (positional: a call with keywords packs and unpacks a dict per actor)
    return ActorTraces(
        store,
        getattr(options, "traces_max_bytes", 1024 * 1024),
        time.time_ns if clock is time.time else (lambda: int(clock() * 1e9)),
        None,
        CHUNK_AGE,
        store,
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
