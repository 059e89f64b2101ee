"""The counters the runtime updates on its paths: plain ints and lists, no Prometheus.

One :class:`ActorMetrics` per actor *name* (not per actor id: label cardinality stays the
number of actor definitions), shared by every instance of that name; the instance reaches it
as ``instance.metrics`` and its subsystems (queue, schedule) through their owner (seed lesson
24: per-actor metrics hang off the actor, subsystems update shared handles). Nothing here
imports ``prometheus_client``: :mod:`rivetkit.metrics.exposition` folds these numbers into
metric families when ``/metrics`` is scraped, so an update is an integer increment; actions
are recorded by :class:`ActionStats`, a hot-path twin selected in
:mod:`rivetkit.metrics.action_stats`.

:class:`RuntimeMetrics` holds the handles of one :class:`~rivetkit.runtime.live_actors.Runtime` (so
several runtimes in one process, as in tests, never share numbers).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from rivetkit.errors import RivetError
from rivetkit.metrics.action_stats import ActionStats

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

__all__ = [
    "DEFAULT_BUCKETS",
    "UNKNOWN_ACTION",
    "ActionStats",
    "ActorMetrics",
    "MetricsOptions",
    "RuntimeMetrics",
    "error_code",
]

#: Upper bounds (seconds) of the action latency histogram: 50 µs to 30 s.
DEFAULT_BUCKETS: Final[tuple[float, ...]] = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

#: The ``action`` label of calls to names the actor does not define (a client may send any
#: name; one label value for all of them keeps the cardinality bounded).
UNKNOWN_ACTION: Final = "_unknown"


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class MetricsOptions:
    """What a runtime measures.

    :param enabled: collect metrics at all (off: the hooks cost one ``None`` check and
        ``/metrics`` answers 403 ``metrics not enabled``)
    :param latency: time every action into the latency histogram (off: actions are only
        counted, and no clock is read on the action path)
    :param buckets: upper bounds (seconds) of the latency histogram, ascending
    :param process: include the process-wide families of ``prometheus_client``
        (``process_*``, ``python_info``, ``python_gc_*``)
    """

    enabled: bool = True
    latency: bool = True
    buckets: tuple[float, ...] = field(default=DEFAULT_BUCKETS)
    process: bool = True

    @classmethod
    def from_env(cls) -> MetricsOptions:
        """Options from the environment: ``RIVETKIT_METRICS=0`` turns metrics off,
        ``RIVETKIT_METRICS_LATENCY=0`` turns the latency histograms off."""
        return cls(
            enabled=_env_flag("RIVETKIT_METRICS", True),
            latency=_env_flag("RIVETKIT_METRICS_LATENCY", True),
        )

    def __post_init__(self) -> None:
        buckets = tuple(float(b) for b in self.buckets)
        if not buckets or any(b <= 0 for b in buckets) or list(buckets) != sorted(set(buckets)):
            raise ValueError("buckets must be positive, distinct and ascending")
        object.__setattr__(self, "buckets", buckets)


def error_code(error: BaseException) -> str:
    """The ``code`` label of a failed action: ``group.code`` of a RivetError,
    ``cancelled`` for a cancellation, ``core.internal_error`` for anything else."""
    if isinstance(error, RivetError):
        return f"{error.group}.{error.code}"
    if isinstance(error, asyncio.CancelledError):
        return "cancelled"
    return "core.internal_error"


class ActorMetrics:
    """The counters of every actor named :attr:`name` in one runtime.

    The runtime calls :attr:`start` before an action and :attr:`action_ok` or
    :meth:`action_failed` after it (``start`` and ``action_ok`` are the bound methods of
    :attr:`stats`: with the compiled twin the action path runs no Python frame of ours); the
    rest are plain attributes the instance and its subsystems increment.
    """

    __slots__ = (
        "action_ok",
        "bounds",
        "conns_closed",
        "conns_opened",
        "destroys",
        "errors",
        "known",
        "latency",
        "name",
        "queue_completed",
        "queue_received",
        "queue_sent",
        "schedule_runs",
        "sleeps",
        "start",
        "state_bytes",
        "state_saves",
        "stats",
        "wakes",
    )

    def __init__(
        self, name: str, actions: Iterable[str], options: MetricsOptions | None = None
    ) -> None:
        options = options or MetricsOptions()
        self.name = name
        #: The definition's action names.
        self.known = frozenset(actions)
        self.latency = options.latency
        #: Histogram upper bounds; bucket ``len(bounds)`` is ``+Inf``.
        self.bounds: tuple[float, ...] = options.buckets
        #: Calls (ok and failed) and latency buckets per action.
        self.stats = ActionStats(options.buckets, options.latency)
        #: ``(action, code) -> failures``.
        self.errors: dict[tuple[str, str], int] = {}
        #: Reads the clock before an action (0.0 without latency).
        self.start: Callable[[], float] = self.stats.start
        #: Records a successful action: ``action_ok(action, started)``.
        self.action_ok: Callable[[str, float], None] = self.stats.ok
        self.conns_opened = 0
        self.conns_closed = 0
        self.queue_sent = 0
        self.queue_received = 0
        self.queue_completed = 0
        self.state_saves = 0
        self.state_bytes = 0
        self.wakes = 0
        self.sleeps = 0
        self.destroys = 0
        #: ``(kind, outcome) -> runs``; kind ``once`` or ``recurring``, outcome ``ok``,
        #: ``error`` or ``skipped``.
        self.schedule_runs: dict[tuple[str, str], int] = {}

    def action_failed(self, action: str, error: BaseException, started: float) -> None:
        """Record a failed action (its latency too, when the action exists)."""
        if action in self.known:
            self.stats.ok(action, started)
        else:
            action = UNKNOWN_ACTION
        key = (action, error_code(error))
        self.errors[key] = self.errors.get(key, 0) + 1

    def schedule_run(self, kind: str, outcome: str) -> None:
        """Count a schedule run (``kind``: ``once``/``recurring``; ``outcome``:
        ``ok``/``error``/``skipped``)."""
        key = (kind, outcome)
        self.schedule_runs[key] = self.schedule_runs.get(key, 0) + 1

    def stopped(self, reason: str) -> None:
        """Count an instance's stop: ``destroy``, or a sleep (``sleep``, ``shutdown``)."""
        if reason == "destroy":
            self.destroys += 1
        else:
            self.sleeps += 1

    def calls(self, action: str) -> int:
        """Calls of ``action`` so far (ok and failed)."""
        row = self.stats.row(action)
        return 0 if row is None else sum(row[0])

    def failures(self, action: str) -> int:
        """Failed calls of ``action`` so far."""
        return sum(n for (name, _code), n in self.errors.items() if name == action)


class RuntimeMetrics:
    """The metrics of one runtime: an :class:`ActorMetrics` per actor name, and (made on
    the first scrape) its own ``prometheus_client`` registry.

    :param live: returns the runtime's live instances by actor id (read at scrape time for
        the gauges: actors, connections, queue sizes)
    :param driver: the runtime's driver (``rivetkit_info`` reads its kind and pool)
    """

    def __init__(
        self,
        live: Callable[[], Mapping[str, Any]],
        driver: Any = None,
        options: MetricsOptions | None = None,
    ) -> None:
        self.options = options or MetricsOptions()
        self.live = live
        self.driver = driver
        self.actors: dict[str, ActorMetrics] = {}
        self._registry: CollectorRegistry | None = None

    def for_actor(self, name: str, actions: Collection[str] = ()) -> ActorMetrics:
        """The shared handle of the actors named ``name`` (made on first use); ``actions``:
        the definition's action names (failures of other names count as ``_unknown``)."""
        handle = self.actors.get(name)
        if handle is None:
            handle = self.actors[name] = ActorMetrics(name, actions, self.options)
        elif len(actions) != len(handle.known):
            handle.known = frozenset(actions)  # the definition changed since
        return handle

    @property
    def registry(self) -> CollectorRegistry:
        """This runtime's ``CollectorRegistry`` (never the global one)."""
        if self._registry is None:
            from rivetkit.metrics.exposition import build_registry

            self._registry = build_registry(self)
        return self._registry
