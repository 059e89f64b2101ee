"""Process-wide counters of the embedded server's transport: clients it disconnected or
refused to protect itself (see :mod:`rivetkit.server.limits`).

The protocol classes update :data:`SERVER_COUNTERS` (plain ints; one server per process in
practice, and tests compare differences); ``/metrics`` shows them as
``rivetkit_server_*_total`` counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = ["SERVER_COUNTERS", "ServerCounters", "server_families"]


class ServerCounters:
    """What the server's protocol classes count."""

    __slots__ = (
        "connections_refused",
        "header_timeouts",
        "headers_too_large",
        "slow_clients_disconnected",
    )

    def __init__(self) -> None:
        #: WebSockets closed because their outgoing buffer went over ``ws_max_buffer``.
        self.slow_clients_disconnected = 0
        #: Connections answered 503 because the server had ``max_connections`` open.
        self.connections_refused = 0
        #: Connections closed because a request head took over ``header_timeout``.
        self.header_timeouts = 0
        #: Requests answered 431 (too many header fields, or too long a head).
        self.headers_too_large = 0


#: The counters of this process's server.
SERVER_COUNTERS = ServerCounters()

_FAMILIES = (
    (
        "rivetkit_server_slow_clients_disconnected",
        "WebSockets closed (1008 ws.send_buffer_full) because the client read too slowly.",
        "slow_clients_disconnected",
    ),
    (
        "rivetkit_server_connections_refused",
        "Connections refused with 503 because max_connections were open.",
        "connections_refused",
    ),
    (
        "rivetkit_server_header_timeouts",
        "Connections closed because a request head was not complete within header_timeout.",
        "header_timeouts",
    ),
    (
        "rivetkit_server_headers_too_large",
        "Requests answered 431: too many header fields or too long a request head.",
        "headers_too_large",
    ),
)


def server_families(counters: ServerCounters = SERVER_COUNTERS) -> Iterator[Metric]:
    """The ``rivetkit_server_*_total`` counter families of ``counters``."""
    from prometheus_client.core import CounterMetricFamily

    for name, doc, attr in _FAMILIES:
        yield CounterMetricFamily(name, doc, value=getattr(counters, attr))
