"""Actor-level routing, transport-neutral (DESIGN.md §2, "dispatch").

Transports resolve which actor a request is for, then hand dispatch plain objects:

* :class:`~rivetkit.dispatch.http.Request` / :class:`~rivetkit.dispatch.http.Response` (also
  the public API of ``on_request`` handlers, exported as ``rivetkit.Request`` and
  ``rivetkit.Response``);
* a :class:`~rivetkit.dispatch.websocket.WebSocket` (``accept``, ``receive``, ``send``,
  ``close``); ``on_websocket`` handlers get a :class:`~rivetkit.dispatch.websocket.RawWebSocket`;
* :class:`~rivetkit.dispatch.router.Dispatcher` runs the routes (``/action``, ``/queue``,
  ``/request``, ``/connect``, ``/websocket``, ``/metadata``, ``/health``, ``/``);
* :class:`~rivetkit.dispatch.connect.ConnSession` serves a ``/connect`` socket (the
  actor-connect protocol), :mod:`rivetkit.dispatch.hibernation` the raw sockets that outlive
  their actor's sleep.
"""

from rivetkit.dispatch.connect import parse_subprotocols
from rivetkit.dispatch.http import Headers, Request, Response
from rivetkit.dispatch.router import Dispatcher, error_response
from rivetkit.dispatch.websocket import RawWebSocket, WebSocket

__all__ = [
    "Dispatcher",
    "Headers",
    "RawWebSocket",
    "Request",
    "Response",
    "WebSocket",
    "error_response",
    "parse_subprotocols",
]
