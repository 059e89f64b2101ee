"""The Prometheus side: a collector folding a runtime's counters into metric families.

Families (``actor_name`` is the actor's name, never its id):

================================================ ========= ==================================
family                                           type      labels
================================================ ========= ==================================
``rivetkit_info``                                info      runtime, version, type, speedups,
                                                           python_version, driver, pool_name
``rivetkit_actor_active``                        gauge     actor_name (live instances)
``rivetkit_actor_wakes_total``                   counter   actor_name (starts, new or not)
``rivetkit_actor_sleeps_total``                  counter   actor_name (sleep and shutdown)
``rivetkit_actor_destroys_total``                counter   actor_name
``rivetkit_actor_actions_total``                 counter   actor_name, action, outcome (ok,
                                                           error)
``rivetkit_actor_action_errors_total``           counter   actor_name, action, code
                                                           (``group.code``)
``rivetkit_actor_action_duration_seconds``       histogram actor_name, action (every call)
``rivetkit_actor_connections``                   gauge     actor_name (open now)
``rivetkit_actor_connections_opened_total``      counter   actor_name
``rivetkit_actor_connections_closed_total``      counter   actor_name
``rivetkit_actor_queue_size``                    gauge     actor_name (messages held now)
``rivetkit_actor_queue_messages_sent_total``     counter   actor_name
``rivetkit_actor_queue_messages_received_total`` counter   actor_name
``rivetkit_actor_queue_messages_completed_total`` counter  actor_name
``rivetkit_actor_state_saves_total``             counter   actor_name
``rivetkit_actor_state_saved_bytes_total``       counter   actor_name
``rivetkit_actor_schedule_runs_total``           counter   actor_name, kind (once,
                                                           recurring), outcome (ok, error,
                                                           skipped)
================================================ ========= ==================================

plus, unless turned off, ``prometheus_client``'s process-wide collectors (``process_*``,
``python_info``, ``python_gc_*``). Unknown action names share the label ``_unknown``. The
histogram is absent when latency is off (``RIVETKIT_METRICS_LATENCY=0``).
"""

from __future__ import annotations

import hmac
import os
import platform
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from rivetkit._version import __version__
from rivetkit.metrics.server import server_families

if TYPE_CHECKING:
    from rivetkit.metrics.counters import ActorMetrics, RuntimeMetrics

__all__ = [
    "CONTENT_TYPE",
    "RuntimeCollector",
    "build_registry",
    "check_scrape",
    "render",
    "scrape_response",
]

#: ``Content-Type`` of the exposition (Prometheus text format 0.0.4).
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

_ACTOR: Final = ["actor_name"]
_ACTION: Final = ["actor_name", "action"]


def _bound(value: float) -> str:
    return repr(float(value))


class RuntimeCollector(Collector):
    """Collects ``rivetkit_info`` and the ``rivetkit_actor_*`` families of one runtime.

    :param only: restrict the actor families to the actor named so (the actor-level
        ``/metrics`` route)
    """

    def __init__(self, metrics: RuntimeMetrics, only: str | None = None) -> None:
        self.metrics = metrics
        self.only = only

    def describe(self) -> Iterable[Metric]:
        return ()  # no up-front description: collect() is the truth (and cheap)

    def collect(self) -> Iterator[Metric]:
        yield self._info()
        handles: list[ActorMetrics] = sorted(
            (h for h in self.metrics.actors.values() if self.only in (None, h.name)),
            key=lambda h: h.name,
        )
        live = self._live()
        names = sorted({h.name for h in handles} | set(live))
        yield from self._lifecycle(handles, live, names)
        yield from self._actions(handles)
        yield from self._connections(handles, live, names)
        yield from self._queues(handles, live, names)
        yield from self._saves(handles)
        yield from self._schedules(handles)
        if self.only is None:
            yield from server_families()

    # -- families -----------------------------------------------------------------------------

    def _info(self) -> Metric:
        import rivetkit

        driver = self.metrics.driver
        info = InfoMetricFamily("rivetkit", "The rivetkit runtime serving these actors.")
        info.add_metric(
            [],
            {
                "runtime": "rivetkit",
                "version": __version__,
                "type": "deployed" if os.environ.get("NODE_ENV") == "production" else "local",
                "speedups": "true" if rivetkit.SPEEDUPS else "false",
                "python_version": platform.python_version(),
                "driver": driver.kind if driver is not None else "embedded",
                "pool_name": driver.pool_name if driver is not None else "",
            },
        )
        return info

    def _live(self) -> dict[str, list[Any]]:
        """Live instances by actor name (only the chosen actor's with ``only``)."""
        by_name: dict[str, list[Any]] = defaultdict(list)
        only = self.only
        for instance in list(self.metrics.live().values()):
            if only is None or instance.name == only:
                by_name[instance.name].append(instance)
        return by_name

    def _lifecycle(
        self, handles: list[ActorMetrics], live: dict[str, list[Any]], names: list[str]
    ) -> Iterator[Metric]:
        active = GaugeMetricFamily(
            "rivetkit_actor_active", "Live actor instances in this process.", labels=_ACTOR
        )
        for name in names:
            active.add_metric([name], len(live.get(name, ())))
        yield active
        yield _counter(
            "rivetkit_actor_wakes", "Actor starts (new actors and wakes).", handles, "wakes"
        )
        yield _counter(
            "rivetkit_actor_sleeps",
            "Actors that went to sleep (idle, requested or at process shutdown).",
            handles,
            "sleeps",
        )
        yield _counter("rivetkit_actor_destroys", "Actors destroyed.", handles, "destroys")

    def _actions(self, handles: list[ActorMetrics]) -> Iterator[Metric]:
        totals = CounterMetricFamily(
            "rivetkit_actor_actions",
            "Actions run, by outcome.",
            labels=[*_ACTION, "outcome"],
        )
        errors = CounterMetricFamily(
            "rivetkit_actor_action_errors",
            "Failed actions, by error (group.code).",
            labels=[*_ACTION, "code"],
        )
        latency = self.metrics.options.latency
        histogram = HistogramMetricFamily(
            "rivetkit_actor_action_duration_seconds",
            "Action latency in seconds (every call, ok or failed).",
            labels=_ACTION,
        )
        for handle in handles:
            failed: dict[str, int] = defaultdict(int)
            for (action, code), count in sorted(handle.errors.items()):
                errors.add_metric([handle.name, action, code], count)
                failed[action] += count
            stats = handle.stats
            for action in sorted(set(stats.names()) | set(failed)):
                row = stats.row(action)
                calls = failed[action] if row is None else sum(row[0])
                totals.add_metric([handle.name, action, "ok"], calls - failed[action])
                totals.add_metric([handle.name, action, "error"], failed[action])
                if latency and row is not None:
                    counts, total = row
                    buckets: list[tuple[str, float]] = []
                    cumulative = 0
                    for bound, hits in zip(handle.bounds, counts):
                        cumulative += hits
                        buckets.append((_bound(bound), cumulative))
                    buckets.append(("+Inf", calls))
                    histogram.add_metric([handle.name, action], buckets, total)
        yield totals
        yield errors
        if latency:
            yield histogram

    def _connections(
        self, handles: list[ActorMetrics], live: dict[str, list[Any]], names: list[str]
    ) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("rivetkit_actor_connections", "Open connections.", labels=_ACTOR)
        for name in names:
            gauge.add_metric([name], sum(len(i.conns) for i in live.get(name, ())))
        yield gauge
        yield _counter(
            "rivetkit_actor_connections_opened", "Connections opened.", handles, "conns_opened"
        )
        yield _counter(
            "rivetkit_actor_connections_closed", "Connections closed.", handles, "conns_closed"
        )

    def _queues(
        self, handles: list[ActorMetrics], live: dict[str, list[Any]], names: list[str]
    ) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "rivetkit_actor_queue_size",
            "Queue messages held (pending, ready or in flight).",
            labels=_ACTOR,
        )
        for name in names:
            gauge.add_metric([name], sum(_queue_size(i) for i in live.get(name, ())))
        yield gauge
        yield _counter(
            "rivetkit_actor_queue_messages_sent", "Queue messages sent.", handles, "queue_sent"
        )
        yield _counter(
            "rivetkit_actor_queue_messages_received",
            "Queue messages received.",
            handles,
            "queue_received",
        )
        yield _counter(
            "rivetkit_actor_queue_messages_completed",
            "Completable queue messages completed.",
            handles,
            "queue_completed",
        )

    def _saves(self, handles: list[ActorMetrics]) -> Iterator[Metric]:
        yield _counter(
            "rivetkit_actor_state_saves", "Actor state snapshots written.", handles, "state_saves"
        )
        yield _counter(
            "rivetkit_actor_state_saved_bytes",
            "Bytes of the actor state snapshots written.",
            handles,
            "state_bytes",
        )

    def _schedules(self, handles: list[ActorMetrics]) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "rivetkit_actor_schedule_runs",
            "Scheduled actions run, by kind (once, recurring) and outcome.",
            labels=[*_ACTOR, "kind", "outcome"],
        )
        for handle in handles:
            for (kind, outcome), count in sorted(handle.schedule_runs.items()):
                runs.add_metric([handle.name, kind, outcome], count)
        yield runs


def _counter(name: str, doc: str, handles: list[ActorMetrics], attr: str) -> Metric:
    family = CounterMetricFamily(name, doc, labels=_ACTOR)
    for handle in handles:
        family.add_metric([handle.name], getattr(handle, attr))
    return family


def _queue_size(instance: Any) -> int:
    queue = getattr(instance, "queue", None)
    size = getattr(queue, "size", 0)
    return int(size) if isinstance(size, int) else 0


def build_registry(metrics: RuntimeMetrics) -> CollectorRegistry:
    """A new registry holding the collectors of ``metrics`` (the process-wide ones too,
    unless ``metrics.options.process`` is off)."""
    registry = CollectorRegistry(auto_describe=False)
    if metrics.options.process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    registry.register(RuntimeCollector(metrics))
    return registry


class _OneActor:
    """What the actor-level route renders: ``rivetkit_info`` and one actor's families."""

    def __init__(self, metrics: RuntimeMetrics, name: str) -> None:
        self._collector = RuntimeCollector(metrics, only=name)

    def collect(self) -> Iterator[Metric]:
        return iter(self._collector.collect())


def render(metrics: RuntimeMetrics, actor_name: str | None = None) -> bytes:
    """The Prometheus text of ``metrics``: everything (process-wide families included), or
    ``rivetkit_info`` and the families of the actor named ``actor_name``."""
    if actor_name is None:
        return generate_latest(metrics.registry)
    return generate_latest(_OneActor(metrics, actor_name))


def check_scrape(
    metrics: RuntimeMetrics | None, authorization: str | None
) -> tuple[int, bytes] | None:
    """Whether a server-level scrape may proceed: None, or the ``(status, text body)`` to
    answer instead: 403 ``metrics not enabled`` when the runtime collects none, 401 when
    ``RIVETKIT_METRICS_TOKEN`` is set and the request lacks ``Authorization: Bearer
    <token>`` (compared in constant time)."""
    if metrics is None:
        return 403, b"metrics not enabled\n"
    token = os.environ.get("RIVETKIT_METRICS_TOKEN")
    if token:
        given = authorization or ""
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), token.encode()
        ):
            return 401, b"unauthorized\n"
    return None


def scrape_response(
    metrics: RuntimeMetrics | None, authorization: str | None, prefix: bytes = b""
) -> tuple[int, bytes, bytes]:
    """The answer to a server-level ``GET /metrics``: ``(status, content type, body)``.

    One handler for both transports, the embedded server and the engine-mode listener, so
    ``RIVETKIT_METRICS_TOKEN`` and ``RIVETKIT_METRICS`` behave the same in both (see
    :func:`check_scrape`). ``prefix``: the transport's own families, put before the
    runtime's (the engine-mode listener's envoy families).
    """
    refusal = check_scrape(metrics, authorization)
    if refusal is not None or metrics is None:
        status, text = refusal or (403, b"")
        return status, b"text/plain; charset=utf-8", text
    return 200, CONTENT_TYPE.encode(), prefix + render(metrics)
