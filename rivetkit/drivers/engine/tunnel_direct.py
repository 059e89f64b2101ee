"""The direct road of an HTTP action through the tunnel: a ``RequestStart`` for
``POST /action/{name}`` of a running actor, answered without the general dispatch.

The general road (:meth:`~rivetkit.drivers.engine.tunnel.Tunnel._start_http`) makes a
:class:`~rivetkit.dispatch.Request` (the path split, the gateway's header dict converted),
then, in a task per request, :class:`~rivetkit.drivers.engine.actor_calls.ChainDispatcher`
enters the call chain of the request's header, ``Dispatcher.handle_http`` routes the path,
``Dispatcher._action`` reads the body and runs the action, and a
:class:`~rivetkit.dispatch.Response` goes back as one ``ResponseStart``. :func:`take` does
the same steps for the common case with the embedded server's direct road: the action runs
by the selected twin's ``answer_action`` (``rivetkit._speedups._action_fast`` or
``rivetkit.server._action_fast_py``: ``Dispatcher._action``'s steps, the dispatcher's own
errors, metrics and traces), with the chain entered first, and the answer is framed as
the general road frames it (:meth:`~rivetkit.drivers.engine.tunnel.Tunnel._answer`). An
action that runs no coroutine of the user's (``ActorInstance.runs_at_once``: a sync action,
no connection hook, ...) is answered within the tunnel message's handling, in a context of
its own and without a task; what suspends all the same goes on in a task, registered as the
request's (a ``RequestAbort`` cancels it). Any other action runs in a task per request, as
on the general road. (So a sync action's code sees ``asyncio.current_task()`` None here, as
on the embedded server's direct road.)

Taken when nothing the general road does would differ: the tunnel's dispatcher is a
:class:`~rivetkit.dispatch.router.Dispatcher` or a ``ChainDispatcher`` (not another
subclass), the body is whole (not ``stream``), the method ``POST``, the path (before any
query) ``/action/{name}`` with a plain name (no ``/``, no ``%``), the actor running here,
and the request's ``x-rivet-encoding`` (first of any case) a known one. Anything else takes
the general road, which answers it (errors included) as before.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
from typing import TYPE_CHECKING, Any, Final

from rivetkit import _twins
from rivetkit.dispatch.http import Response
from rivetkit.dispatch.router import Dispatcher
from rivetkit.protocol.trees import ENCODINGS
from rivetkit.runtime.call_chain import CALL_CHAIN, CHAIN_HEADER, parse_header
from rivetkit.runtime.phase import Phase
from rivetkit.runtime.resume import resumed

if TYPE_CHECKING:
    from rivetkit.protocol.envoy_protocol import MessageId, ToEnvoyRequestStart

    from .tunnel import Tunnel

__all__ = ["take"]

logger = logging.getLogger("rivetkit.engine")

_STARTED: Final = Phase.STARTED
#: The x-rivet-encoding values the road takes (an empty value names json, as in the
#: dispatcher's ``_action_headers``).
_ENCODINGS: Final = {**{name: name for name in ENCODINGS}, "": "json"}
#: The body limit beside the actor's own: the general road reads the body with the actor's
#: ``max_incoming_message_size`` alone (``answer_action`` takes the smaller of the two).
_NO_LIMIT: Final = sys.maxsize
#: What a header name (as the gateway spells it) is to the road: 1 the encoding, 2 the
#: connection params, 3 the call chain, 0 anything else (names lower-cased once, bounded).
_KINDS: dict[str, int] = {}
_KINDS_LIMIT: Final = 512
_KIND_OF: Final = {"x-rivet-encoding": 1, "x-rivet-conn-params": 2, CHAIN_HEADER: 3}

#: The selected twin's ``answer_action`` (bound on first use; tests set the other twin).
answer_action: Any = None
#: ``actor_calls.ChainDispatcher`` (imported on first use, as the driver does).
_chain_dispatcher: Any = None


def _kind(name: str) -> int:
    kind = _KINDS.get(name)
    if kind is None:
        kind = _KIND_OF.get(name.lower(), 0)
        if len(_KINDS) >= _KINDS_LIMIT:
            _KINDS.clear()
        _KINDS[name] = kind
    return kind


def _raw(value: str) -> bytes:
    """A header value's bytes as ``tunnel_frames.request_headers`` makes them."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def take(tunnel: Tunnel, key: bytes, message_id: MessageId, start: ToEnvoyRequestStart) -> bool:
    """Answer ``start`` (a request for an actor placed here) on the direct road when it takes
    it (see the module's docstring); False, with nothing done, when not."""
    twin = answer_action
    if twin is None:
        twin = _bind()
    dispatcher = tunnel.dispatcher
    kind = type(dispatcher)
    chained = kind is _chain_dispatcher
    if not chained and kind is not Dispatcher:
        return False
    if start.stream or start.method != "POST":
        return False
    path = start.path
    if not path.startswith("/action/"):
        return False
    name = path[8:]
    cut = name.find("?")
    if cut >= 0:
        name = name[:cut]
        path = path[: cut + 8]
    if not name or "/" in name or "%" in name:
        return False
    actor_id = start.actor_id
    instance = dispatcher.runtime.instances.get(actor_id)  # type: ignore[union-attr]
    if instance is None or instance.phase != _STARTED:
        return False
    encoding = params = chain = None
    for field, value in start.headers.items():
        which = _KINDS.get(field)
        if which is None:
            which = _kind(field)
        if not which:
            continue
        if which == 1:
            if encoding is None:
                encoding = value
        elif which == 2:
            if params is None:
                params = _raw(value)
        elif chain is None:
            chain = _raw(value).decode("latin-1")
    encoding = "json" if encoding is None else _ENCODINGS.get(encoding)
    if encoding is None:
        return False
    if not chained:
        chain = None  # a plain dispatcher does not read the header
    target = (instance, actor_id, name, encoding, params)
    loop: Any = tunnel._loop_now()
    coro = _serve(tunnel, key, message_id, twin, target, start.body or b"", chain, path, loop)
    if instance.runs_at_once(name):
        context = contextvars.copy_context()
        try:
            yielded = context.run(coro.send, None)
        except StopIteration:
            return True  # answered: no task
        task = loop.create_task(resumed(coro, yielded), context=context)
    else:
        task = loop.create_task(coro)
    tunnel._requests[key] = task
    return True


def _bind() -> Any:
    """Bind the twin and ``ChainDispatcher`` (imported late: both load modules above the
    drivers)."""
    global answer_action, _chain_dispatcher
    from .actor_calls import ChainDispatcher

    _chain_dispatcher = ChainDispatcher
    answer_action = _twins.load("_action_fast", "rivetkit.server._action_fast_py").answer_action
    return answer_action


async def _serve(
    tunnel: Tunnel,
    key: bytes,
    message_id: MessageId,
    twin: Any,
    target: Any,
    body: bytes,
    chain: str | None,
    path: str,
    loop: asyncio.AbstractEventLoop,
) -> None:
    """What ``Tunnel._serve_http`` does for the request, with ``twin``'s ``answer_action``
    in place of the dispatcher."""
    try:
        if chain:  # ChainDispatcher.handle_http's enter_from_header
            CALL_CHAIN.set(parse_header(chain))
        try:
            answer = await twin(tunnel, target, body, _NO_LIMIT)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("tunnel: request %s %s failed", "POST", path)
            answer = Response._raw(
                500, [(b"x-rivet-error", b"envoy.fetch_failed")], b"Internal Server Error"
            )
        if answer.__class__ is tuple:
            headers, payload = answer
            tunnel._answer(message_id, 200, headers, payload)
        else:
            tunnel._answer(message_id, answer.status, answer.headers.raw, answer.body)
    except asyncio.CancelledError:
        pass  # aborted by the gateway: nothing to answer
    finally:
        requests = tunnel._requests
        task = requests.get(key)
        if task is not None and task is asyncio.current_task(loop):
            del requests[key]
        tunnel._streams.pop(key, None)
