"""The actor inspector (runtime spec §5): what RivetKit's dashboard talks to.

* :mod:`.token`: the per-actor bearer token (KV ``[3]``), its constant-time check, and the
  operator's way to read it (``rivetkit inspect token ACTOR_ID``);
* :mod:`.snapshot`: the views of an actor (state, connections, queue, schedules, database);
* :mod:`.http`: the ``/inspector/*`` HTTP routes;
* :mod:`.ws`: the ``/inspector/connect`` WebSocket (BARE, inspector-protocol v1..v6) with its
  ``Init`` snapshot and live pushes.

Dispatch (:mod:`rivetkit.dispatch.router`) hands ``/inspector`` requests and sockets here
before any user handler, on both drivers.
"""

from rivetkit.inspector.http import handle_http
from rivetkit.inspector.token import actor_token, token_from_data_dir
from rivetkit.inspector.ws import handle_websocket

__all__ = ["actor_token", "handle_http", "handle_websocket", "token_from_data_dir"]
