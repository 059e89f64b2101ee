"""Prometheus metrics of a runtime: counters updated on the runtime's paths, folded into
metric families when ``/metrics`` is scraped.

* :mod:`rivetkit.metrics.counters`: :class:`MetricsOptions`, :class:`RuntimeMetrics` (one
  per runtime) and :class:`ActorMetrics` (one per actor name): plain numbers, no
  ``prometheus_client`` import on the runtime's import path.
* :mod:`rivetkit.metrics.action_stats`: :class:`ActionStats`, the per-action recorder (the
  selected twin of :mod:`rivetkit.metrics._action_stats_py` and
  ``rivetkit._speedups._action_stats``).
* :mod:`rivetkit.metrics.exposition`: the collector, the per-runtime ``CollectorRegistry``
  and :func:`render` (imported when first scraped).

The transports serve it: ``GET /metrics`` on the embedded server (everything, process-wide
families included), ``GET /metrics`` on an actor (``/gateway/{actor}/metrics``: that actor
name's families), and ``/metrics`` on the engine-mode listener.
"""

from __future__ import annotations

from rivetkit.metrics.counters import (
    DEFAULT_BUCKETS,
    UNKNOWN_ACTION,
    ActorMetrics,
    MetricsOptions,
    RuntimeMetrics,
    error_code,
)

__all__ = [
    "DEFAULT_BUCKETS",
    "UNKNOWN_ACTION",
    "ActorMetrics",
    "MetricsOptions",
    "RuntimeMetrics",
    "error_code",
]
