"""Acknowledge the engine's frames at once on the envoy socket (Linux ``TCP_QUICKACK``).

The engine 2.3.19 writes to the envoy socket with Nagle's algorithm on: a small frame it
writes while an earlier one is not acknowledged yet waits in its kernel for that ACK. Linux
delays an ACK that has no data to ride on by up to ~40 ms, so whenever the engine sends us a
frame we answer nothing to at once (a KV response, an events acknowledgement, a WebSocket
message the actor does not reply to, a request whose action takes a while), whatever it sends
next (the following requests) waits ~40 ms. Measured on engine 2.3.19: an actor calling
another through ``c.client()`` took ~45 ms instead of ~5 ms; under wrk's HTTP load each of the
~4 KV writes a second (state saves, trace chunks) held every request in flight for ~40 ms
(the next read brought the 16 requests of wrk's connections at once), ~10 % of the
throughput and a p99 of ~50 ms instead of ~15 ms.

Asking the kernel for an immediate ACK after each read removes the wait. Linux turns
quick-ack mode off again by itself (once we send), so it is set again on every read, one
``setsockopt`` per read: by :class:`~.inline_receive.InlineClientConnection` itself (its
``before_read``), which works on uvloop too (uvloop binds the protocol's ``data_received``
when the connection is made, so wrapping that method afterwards does nothing there); on
another protocol, by wrapping its ``data_received``. Where there is no ``TCP_QUICKACK`` or
the transport gives no socket, nothing changes.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from .inline_receive import InlineClientConnection

__all__ = ["keep_quick_ack", "quick_ack_setter"]


def quick_ack_setter(sock: Any) -> Callable[[], None] | None:
    """A function setting ``TCP_QUICKACK`` on ``sock`` (errors ignored: the socket may be
    closing), or None when the platform or the socket has no such option."""
    option = getattr(socket, "TCP_QUICKACK", None)
    if option is None or sock is None:
        return None
    level = socket.IPPROTO_TCP
    try:
        setsockopt = sock.setsockopt
        setsockopt(level, option, 1)
    except (OSError, AttributeError):
        return None

    def rearm() -> None:
        try:  # noqa: SIM105 (once per read: cheaper than contextlib.suppress)
            setsockopt(level, option, 1)
        except OSError:
            pass

    return rearm


def keep_quick_ack(ws: Any) -> bool:
    """Set ``TCP_QUICKACK`` on ``ws``'s socket after every read; True when it could."""
    transport = getattr(ws, "transport", None)
    if transport is None:
        return False
    protocol = transport.get_protocol()
    rearm = quick_ack_setter(transport.get_extra_info("socket"))
    if rearm is None or protocol is None:
        return False
    if isinstance(protocol, InlineClientConnection):
        protocol.before_read = rearm
        return True
    received = protocol.data_received

    def data_received(data: bytes) -> None:
        rearm()
        received(data)

    protocol.data_received = data_received
    return True
