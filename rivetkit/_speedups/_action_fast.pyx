# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of :mod:`rivetkit.server._action_fast_py` (the HTTP action fast road).

Same API and behaviour, the same steps in the same order: an HTTP action from the parsed
request to the response bytes in one compiled coroutine (see the pure twin's docstring).
"""

from typing import Any

from rivetkit.dispatch.connect import conn_params_bytes, outgoing_too_long
from rivetkit.dispatch.http import Response, incoming_too_long
from rivetkit.dispatch.router import _CONN_ID_PREFIX, _conn_serials
from rivetkit.errors import EncodeError
from rivetkit.protocol.http_bodies import http_action_request_from, http_action_response_to
from rivetkit.protocol.trees import ENCODINGS, JSON_SCAN, plain_args
from rivetkit.protocol.value_errors import invalid_output
from rivetkit.runtime.phase import Phase
from rivetkit.schemas import conn_params_of
from rivetkit.server.http_fastpath import own_cycle, respond, take_body
from rivetkit.server.request_log import set_actor_context

__all__ = ["answer_action", "direct_target", "serve_action"]

_STARTED = Phase.STARTED

# The x-rivet-encoding values the fast road takes, and the encoding each names (an empty
# value names the default, as in _action_headers).
_ENCODING_NAMES = {name.encode(): name for name in ENCODINGS}
_ENCODING_NAMES[b""] = "json"

# The args of json bodies seen lately, by body (_json_args): only plain scalars, which no one
# can change, so each request gets a new list of the same items. Small bodies, a bounded table.
_ARGS_SEEN: dict[bytes, tuple[Any, ...]] = {}
_ARGS_SEEN_MAX = 1024
_ARGS_SEEN_BODY = 256


async def serve_action(app, scope, receive, send, max_body):
    """Answer the HTTP request of ``scope`` when it is an action the fast road takes.

    Returns None when it is not (nothing read, nothing sent: answer it the ordinary way);
    the response's status when the response was written; or a
    :class:`~rivetkit.dispatch.http.Response` for the caller to send (an error, or an
    answer :func:`~rivetkit.server.http_fastpath.respond` cannot write in one go).
    ``max_body`` is the server's own body limit (``MAX_BODY_SIZE`` of the app).
    """
    raw_path = scope.get("raw_path")
    if not raw_path or scope.get("root_path") or scope["method"] != "POST":
        return None
    target = direct_target(app, raw_path, scope["query_string"], scope["headers"])
    if target is None:
        return None
    # Our protocol's cycle, reached through the very receive and send the app got.
    cycle = own_cycle(scope, receive)
    if cycle is None or getattr(send, "__self__", None) is not cycle:
        return None
    body = take_body(cycle)
    if body is None:
        return None
    answer = await answer_action(app, target, body, max_body)
    if answer.__class__ is not tuple:
        return answer
    headers, payload = answer
    if respond(cycle, 200, headers, payload):
        return 200
    return Response._raw(200, headers, payload)


def direct_target(app, raw_path, query, headers):
    """What the fast road needs of a ``POST`` to ``raw_path`` (``query`` its query string,
    ``headers`` its raw header list) when it takes it: a tuple for :func:`answer_action`;
    None when it does not (a path other than ``/gateway/{actor}/action/{name}`` with a plain
    name, a route not cached, an actor not running, an unknown encoding)."""
    path = raw_path.decode("latin-1")
    if not path.startswith("/gateway/"):
        return None
    tail = path[9:]
    cut = tail.find("/")
    if cut < 0:
        return None
    rest = tail[cut:]
    if not rest.startswith("/action/"):
        return None
    name = rest[8:]
    if not name or "/" in name or "%" in name:
        return None
    actor_id = app._routes.get((tail[:cut], query))
    if actor_id is None:
        return None
    instance = app.runtime.instances.get(actor_id)
    if instance is None or instance.phase != _STARTED:
        return None
    # _action_headers' walk, without its call and decode.
    raw_encoding = raw_params = None
    for field, value in headers:
        if field == b"x-rivet-encoding":
            if raw_encoding is None:
                raw_encoding = value
        elif field == b"x-rivet-conn-params" and raw_params is None:
            raw_params = value
    encoding = "json" if raw_encoding is None else _ENCODING_NAMES.get(raw_encoding)
    if encoding is None:
        return None
    return instance, actor_id, name, encoding, raw_params


async def answer_action(app, target, body, max_body):
    """Run the action of ``target`` (from :func:`direct_target`) on the request ``body``:
    what ``Dispatcher._action`` does, step for step. ``(headers, payload)`` of the ``200``
    answer, or the error's :class:`~rivetkit.dispatch.http.Response` (the dispatcher's own
    ``_error``). ``max_body`` is the server's own body limit."""
    instance, actor_id, name, encoding, raw_params = target
    # From here on the request is ours: what follows is Dispatcher._action's body.
    set_actor_context(instance, actor_id)
    dispatcher = app.dispatcher
    traced = False
    instance.begin_request()
    try:
        options = instance.options
        limit = options.max_incoming_message_size
        cap = max_body if limit is None or limit > max_body else limit
        if len(body) > cap:
            raise incoming_too_long(cap)
        args = _json_args(body) if encoding == "json" else None
        if args is None:
            args = http_action_request_from(body, encoding)
        params = None if raw_params is None else conn_params_bytes(raw_params)
        params = conn_params_of(instance.definition, params)
        # router._ephemeral_conn_id, inline (no frame)
        conn_id = _CONN_ID_PREFIX + "%012x" % (next(_conn_serials) & 0xFFFFFFFFFFFF)
        connections = instance.connections
        conn = connections.open_plain(params, conn_id)
        if conn is None:
            conn = await instance.connect(params, conn_id=conn_id)
        try:
            traced = True  # the runtime logs the failures of actions
            output = await instance.invoke(name, args, conn)
            traced = False
        finally:
            try:
                if not connections.close_plain(conn):
                    await instance.disconnect(conn, None)
            except Exception:
                instance.log.exception("closing the connection of an HTTP request failed")
        try:
            payload = http_action_response_to(output, encoding)
        except EncodeError as exc:
            raise invalid_output(name, output, encoding, exc) from exc
        if len(payload) > options.max_outgoing_message_size:
            raise outgoing_too_long(options.max_outgoing_message_size)
    except Exception as exc:
        return dispatcher._error(exc, instance, f"action {name!r}", traced=traced)
    finally:
        instance.end_request()
    return dispatcher.success_headers(instance, encoding), payload


def _json_args(body):
    """The args of a json action body in the common case (UTF-8 text holding one object, no
    surrounding whitespace, its ``args`` a list that JSON-compat decoding leaves as it is):
    what ``http_action_request_from`` returns for it, without its layers. None for any other
    body: ``http_action_request_from`` decides then, errors included."""
    seen = _ARGS_SEEN.get(body)
    if seen is not None:
        return list(seen)
    try:
        text = body.decode("utf-8")
        value, end = JSON_SCAN(text, 0)
    except (UnicodeDecodeError, StopIteration, ValueError, RecursionError):
        return None
    if end != len(text) or type(value) is not dict:
        return None
    args = value.get("args")
    if type(args) is list and plain_args(args):
        if len(body) <= _ARGS_SEEN_BODY:
            if len(_ARGS_SEEN) >= _ARGS_SEEN_MAX:
                _ARGS_SEEN.clear()
            _ARGS_SEEN[body] = tuple(args)
        return args
    return None
