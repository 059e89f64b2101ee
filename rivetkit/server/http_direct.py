"""The direct road of an HTTP action: answered from our httptools protocol's parser
callbacks, without the ASGI machinery (:mod:`rivetkit.server.http_guard` calls it).

The fast road (:mod:`rivetkit.server.action_fast`) answers a cached action inside the app,
behind uvicorn's scope dict, its ``RequestResponseCycle`` with its ``receive``/``send``, a
task per request and the app's ``__call__``. When the head already tells that the fast road
would take the request, :func:`take` sets a :class:`DirectCycle` in place of uvicorn's cycle,
and once the (small, whole) body is in, :meth:`DirectCycle.run` runs the fast road's own
:func:`~rivetkit.server._action_fast_py.answer_action` and writes the answer with
:func:`~rivetkit.server.http_fastpath.respond`: the same bytes and bookkeeping. A request
that runs no coroutine of the user's (a sync action, no connection hook) is answered within
the callback, with no task at all; any other in one task per request (in the server's
tasks, as uvicorn's own: an async action's first steps may need the current task).
A request whose route is not cached to a running actor (the first to a new key, a sleeping
actor) is taken too: its task first finds, creates or wakes the actor as the ordinary road
does (the app's ``_gateway`` and the runtime's wake: the same driver calls, route cache and
errors), then answers as for a cached route.

Taken only where nothing the ordinary road does would differ: the app is a started
:class:`~rivetkit.server.app.RivetApp` (alone or behind uvicorn's proxy-headers middleware)
whose fast road is one of the two twins' ``serve_action``, without access logs; the request
is a ``POST /gateway/{segment}/action/{name}`` (a plain name, a known encoding) in
HTTP/1.1, not an upgrade, no ``Expect: 100-continue``, no ``Origin`` and a
``Host`` the app allows, a body of at most :data:`MAX_DIRECT_BODY` bytes with a
``content-length`` (no transfer coding); no other request in flight on the connection, no
root path, under the concurrency limit. Anything else takes the ordinary road.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, ClassVar, Final

from rivetkit.logs import RequestContext, _current
from rivetkit.protocol.trees import ENCODINGS
from rivetkit.runtime.phase import Phase
from rivetkit.runtime.resume import resumed
from rivetkit.server.cors import OriginPolicy
from rivetkit.server.request_log import set_actor_context

__all__ = ["MAX_DIRECT_BODY", "NO_EVENT", "DirectCycle", "direct_app", "take"]

#: The largest body the direct road takes (uvicorn's flow control never pauses below it).
MAX_DIRECT_BODY: Final = 65536

_FRAMING: Final = (b"content-length", b"transfer-encoding")
_RAY_ID: Final = b"x-rivet-ray-id"  # (request_log.RAY_ID_HEADER)
_STARTED: Final = Phase.STARTED


class _NoEvent:
    """The ``message_event`` of a :class:`DirectCycle`: nobody waits on it."""

    __slots__ = ()

    def set(self) -> None:
        """Nothing to wake."""

    def is_set(self) -> bool:
        """Always set: nothing to wait for."""
        return True


#: The ``message_event`` of every :class:`DirectCycle` (callers may skip its no-op ``set``).
NO_EVENT: Final = _NoEvent()
_POST: Final = {"type": "http", "method": "POST"}


class DirectCycle:
    """What uvicorn's protocol and :func:`~rivetkit.server.http_fastpath.respond` read and
    write of a ``RequestResponseCycle``, for one request on the direct road (uvicorn's
    ``connection_lost``, ``shutdown``, ``on_body`` and pipelining see it as a cycle)."""

    __slots__ = (
        "app",
        "body",
        "chunked_encoding",
        "default_headers",
        "disconnected",
        "expected_content_length",
        "flow",
        "headers",
        "keep_alive",
        "more_body",
        "on_response",
        "proto",
        "ray",
        "response_complete",
        "response_started",
        "target",
        "transport",
        "twin",
        "waiting_for_100_continue",
    )

    access_log: Final = False
    message_event: Final = NO_EVENT
    scope: Final = _POST
    #: Requests the direct road took in this process (tests read it).
    taken: ClassVar[int] = 0

    def __init__(self, proto: Any, app: Any, twin: Any, target: Any, keep_alive: bool) -> None:
        self.proto = proto
        self.app = app
        self.twin = twin
        self.target = target
        self.headers = proto.headers
        self.transport = proto.transport
        self.flow = proto.flow
        self.default_headers = proto.server_state.default_headers
        self.on_response = proto.on_response_complete
        self.keep_alive = keep_alive
        self.body = b""
        self.more_body = True
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.waiting_for_100_continue = False
        self.chunked_encoding: bool | None = None
        self.expected_content_length = 0
        #: Whether the head has an ``x-rivet-ray-id`` (:func:`take` sets it).
        self.ray = False

    def run(self) -> None:
        """The whole body is in: answer it. Within this call when the action runs no
        coroutine of the user's (``ActorInstance.runs_at_once``: a sync action, no
        connection hook, ...), else in one task of the server's (as uvicorn's own task per
        request: an async action's first steps may need the current task, for a timeout);
        what suspends all the same (a paused write buffer) goes on in a task."""
        proto = self.proto
        self.more_body = False
        if proto.config.reset_contextvars:
            context = contextvars.Context()
        else:
            context = contextvars.copy_context()
        target = self.target
        if target.__class__ is _Resolve:  # its actor found (or made) and woken first: a task
            task = proto.loop.create_task(_answer(self), context=context)
            tasks = proto.tasks
            task.add_done_callback(tasks.discard)
            tasks.add(task)
            return
        instance = target[0]
        if instance.phase != _STARTED or self.app.runtime.instances.get(target[1]) is not instance:
            proto.ordinary_late(self)  # it stopped while the body came: the ordinary road
            return
        if instance.runs_at_once(target[2]):
            coro = _answer(self)
            try:
                yielded = context.run(coro.send, None)
            except StopIteration:
                return  # answered: no task
            except BaseException as exc:  # (_answer's own refusal failed): not the parser's
                proto.logger.error("Exception in ASGI application\n", exc_info=exc)
                proto.transport.close()
                return
            task = proto.loop.create_task(resumed(coro, yielded), context=context)
        else:
            task = proto.loop.create_task(_answer(self), context=context)
        tasks = proto.tasks
        task.add_done_callback(tasks.discard)
        tasks.add(task)


class _Resolve:
    """The target of a direct-road action whose route is not cached to a running actor:
    :func:`_answer` finds (or creates) and wakes its actor as the ordinary road does, then
    the action runs as on a cached route. Made by :func:`_to_resolve` (no ``__init__``)."""

    __slots__ = ("encoding", "name", "params", "path", "query", "rest", "segment")

    path: str
    query: bytes
    #: ``split_path(path)``.
    segment: str
    rest: str
    name: str
    encoding: str
    params: bytes | None


# The x-rivet-encoding values the direct road takes (an empty value names json, as in the
# dispatcher's _action_headers).
_ENCODING_NAMES: Final = {**{name.encode(): name for name in ENCODINGS}, b"": "json"}


def _to_resolve(raw_path: bytes, query: bytes, headers: Any) -> _Resolve | None:
    """A :class:`_Resolve` for a ``POST`` to ``raw_path`` when it is
    ``/gateway/{segment}/action/{name}`` with a plain name and a known encoding (the
    twins' ``direct_target`` checks, but the route's cache); else None."""
    path = raw_path.decode("latin-1")
    if not path.startswith("/gateway/"):
        return None
    cut = path.find("/", 9)
    if cut < 0 or not path.startswith("/action/", cut):
        return None
    name = path[cut + 8 :]
    if not name or "/" in name or "%" in name:
        return None
    # The twins' direct_target walk (inline there: the compiled twin's hot path).
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
    target = _new_resolve(_Resolve)  # (no __init__ frame)
    target.path = path
    target.query = query
    target.segment = path[9:cut]
    target.rest = path[cut:]
    target.name = name
    target.encoding = encoding
    target.params = raw_params
    return target


_new_resolve: Final = object.__new__


def direct_app(app: Any) -> Any:
    """The :class:`~rivetkit.server.app.RivetApp` under uvicorn's loaded ``app`` when the
    direct road may answer for it (the app itself, or behind uvicorn's proxy-headers
    middleware, which only rewrites the client and scheme the road does not read); else
    None."""
    from rivetkit.server.app import RivetApp

    try:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware as proxy
    except ImportError:  # pragma: no cover - another uvicorn
        proxy = None  # type: ignore[assignment,misc]
    if proxy is not None and type(app) is proxy:
        app = app.app
    return app if type(app) is RivetApp else None


def _twins() -> dict[Any, Any]:
    """Each twin's ``serve_action``, to its module (the app's own is the selected one; a
    test may put the other in place)."""
    import importlib

    from rivetkit.server import _action_fast_py

    table: dict[Any, Any] = {_action_fast_py.serve_action: _action_fast_py}
    try:
        compiled = importlib.import_module("rivetkit._speedups._action_fast")
    except ImportError:  # not built: the pure one alone
        return table
    table[compiled.serve_action] = compiled
    return table


_TWINS: dict[Any, Any] | None = None
MAX_BODY_SIZE = 0
respond: Any = None
request_id_of: Any = None


def _bind() -> dict[Any, Any]:
    """Bind what the road calls (imported late: these modules import this one's importer)."""
    global _TWINS, MAX_BODY_SIZE, respond, request_id_of
    from rivetkit.server import app, http_fastpath, request_log

    MAX_BODY_SIZE = app.MAX_BODY_SIZE
    respond = http_fastpath.respond
    request_id_of = request_log.request_id_of
    _TWINS = twins = _twins()
    return twins


def take(proto: Any, app: Any, raw_path: bytes, query: bytes) -> bool:
    """Put a :class:`DirectCycle` in place for the request whose head ``proto`` (our
    protocol) just parsed, when the direct road takes it (see the module's docstring);
    False, with nothing changed, when not."""
    if not app._started or app.access_log:
        return False
    twins = _TWINS
    if twins is None:
        twins = _bind()
    twin = twins.get(app._serve_action)
    if twin is None:
        return False
    cycle = proto.cycle
    if (cycle is not None and not cycle.response_complete) or proto.pipeline:
        return False
    if proto.transport.is_closing():
        return False
    if proto.access_log or proto.root_path or proto.expect_100_continue:
        return False
    limit = proto.limit_concurrency
    if limit is not None and (len(proto.connections) >= limit or len(proto.tasks) >= limit):
        return False
    headers = proto.headers
    policy = app.origin_policy
    plain = policy.__class__ is OriginPolicy  # (a subclass's own check decides every time)
    ray = False  # an x-rivet-ray-id (request_id_of reads it then: most requests have none)
    host = None
    for name, value in headers:
        if name == b"content-length":
            if not value.isdigit() or int(value) > MAX_DIRECT_BODY:
                return False
        elif name == b"transfer-encoding":
            return False
        elif name == _RAY_ID:
            ray = True
        elif name == b"host":
            host = value
        elif name == b"origin" and plain:
            return False  # (the policy's check answers it not None: not taken)
    # The origin policy's check in this walk: no Origin, and a Host it allowed before (else
    # its check decides, as it would have: a refusal, or the Host now vetted).
    if not plain or (
        host is not None and policy._host_check and policy._hosts_seen.get(host) is not True
    ):
        origin, refusal = policy.check(headers)
        if origin is not None or refusal is not None:
            return False
    target = twin.direct_target(app, raw_path, query, headers)
    if target is None:
        target = _to_resolve(raw_path, query, headers)
        if target is None:
            return False
    proto.cycle = cycle = DirectCycle(proto, app, twin, target, proto.parser.should_keep_alive())
    cycle.ray = ray
    DirectCycle.taken += 1
    return True


async def _answer(cycle: DirectCycle) -> None:
    """What ``RivetApp.__call__`` and uvicorn's ``run_asgi`` do for a fast-road action."""
    try:
        # set_request_context and reset_request_context without their frames
        token = _current.set(RequestContext(request_id_of(cycle.headers) if cycle.ray else None))
        try:
            target: Any = cycle.target
            answer: Any = None
            if target.__class__ is _Resolve:  # find, make or wake the actor first
                # What RivetApp._http and the dispatcher do before the action's own steps
                # (the cached route or the app's _gateway, which finds or creates the actor,
                # then its wake), errors logged and answered as they do; inline, not in a
                # coroutine of its own: a frame less at each of the creation's resumptions.
                app = cycle.app
                rest = target.rest
                try:
                    instances = app.runtime.instances
                    actor_id: Any = app._routes.get((target.segment, target.query))
                    instance = None if actor_id is None else instances.get(actor_id)
                    if instance is None:
                        split = (target.segment, rest)
                        actor_id, rest, _ = await app._gateway(target.path, target.query, split)
                        instance = instances.get(actor_id)
                    set_actor_context(instance, actor_id)
                except Exception as exc:
                    answer = app.failed("POST", target.path, exc)
                else:  # Dispatcher.handle_http's _instance (its check made here)
                    if instance is None or instance.phase != _STARTED:
                        try:
                            instance = await app.runtime.instance(actor_id)
                        except Exception as exc:
                            what = f"POST {rest[:200]}"
                            answer = app.dispatcher._error(exc, None, what, traced=False)
                    if answer is None:
                        target = (instance, actor_id, target.name, target.encoding, target.params)
            if answer is None:
                answer = await cycle.twin.answer_action(
                    cycle.app, target, cycle.body, MAX_BODY_SIZE
                )
            if answer.__class__ is tuple:
                status = 200
                headers, body = answer
            else:
                status = answer.status
                headers = answer.headers.raw
                body = answer.body
                if any(name in _FRAMING for name, _ in headers):
                    headers = [(n, v) for n, v in headers if n not in _FRAMING]
            if not respond(cycle, status, headers, body):
                await _send(cycle, status, [*headers, (b"content-length", b"%d" % len(body))], body)
        finally:
            _current.reset(token)
    except BaseException as exc:
        proto = cycle.proto
        proto.logger.error("Exception in ASGI application\n", exc_info=exc)
        if not cycle.response_started:
            await _send(
                cycle,
                500,
                [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"21"),
                    (b"connection", b"close"),
                ],
                b"Internal Server Error",
            )
        else:
            proto.transport.close()


async def _send(cycle: DirectCycle, status: int, headers: Any, body: bytes) -> None:
    """Send the answer as uvicorn's ``send`` would, by its ASGI messages, through a
    ``RequestResponseCycle`` of this request's connection state (a paused write buffer, a
    head :func:`~rivetkit.server.http_fastpath.respond` leaves to uvicorn)."""
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    proto = cycle.proto
    on_response = cycle.on_response

    def done() -> None:
        cycle.response_complete = True
        on_response()

    real = RequestResponseCycle(
        scope=dict(_POST),  # type: ignore[arg-type]
        transport=cycle.transport,
        flow=cycle.flow,
        logger=proto.logger,
        access_logger=proto.access_logger,
        access_log=False,
        default_headers=cycle.default_headers,
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=cycle.keep_alive,
        on_response=done,
    )
    real.disconnected = cycle.disconnected
    if proto.cycle is cycle:  # connection_lost and shutdown mark it from now on
        proto.cycle = real
    cycle.response_started = True
    send: Any = real.send
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
