"""``SyncClient``: the same API as :class:`~rivetkit.client.Client`, blocking.

    with SyncClient("http://127.0.0.1:6420") as client:
        counter = client.counter.get_or_create(["k"])
        print(counter.increment(5))
        with counter.connect() as conn:
            conn.on("newCount", print)
            conn.increment(1)

How it works: the client runs an asyncio event loop in a private daemon thread and an async
:class:`~rivetkit.client.Client` on it; every blocking call submits a coroutine to that loop
and waits for its result (up to the client's ``timeout``, None by default: no limit). Each
blocking member is made from the async member it mirrors (:mod:`rivetkit.client.bridge`),
with the same name, parameters and docstring.

Thread safety: a SyncClient, its handles and connections may be used from any number of
threads at once; calls are serialized onto the loop thread, where the async client does the
work. Callbacks given to ``on``/``once``/``on_error``/``on_open``/``on_close``/
``on_status_change`` run *in the loop thread*: keep them short, guard shared data, and do not
call the blocking API from inside them (that would wait on the thread that must answer: it
raises RuntimeError instead). Iterating ``conn.events()`` blocks the calling thread only.
Interrupting a blocking call (Ctrl-C) cancels the operation on the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

import httpx

from rivetkit.client.bridge import (
    Facade,
    LoopThread,
    attribute,
    blocking,
    direct,
    on_loop,
    threadsafe_remover,
)
from rivetkit.client.client import ActorAccessor, Client
from rivetkit.client.config import RetryOptions
from rivetkit.client.connection import ActorConnection, ActorEvent, EventStream
from rivetkit.client.guard import guard_client_method
from rivetkit.client.handle import ActorHandle
from rivetkit.client.http import WsConnect
from rivetkit.client.query import DEFAULT_MAX_INPUT_SIZE
from rivetkit.client.typed import action_name_of, wire_args

__all__ = [
    "SyncActorAccessor",
    "SyncActorConnection",
    "SyncActorHandle",
    "SyncClient",
    "SyncEventStream",
]

R = TypeVar("R")
P = ParamSpec("P")


def _action_of(facade: Facade, name: str) -> Callable[..., Any]:
    """``facade.<name>``: a blocking call of action ``name`` (unless a client method's name)."""
    guard_client_method(facade, name)

    def call(*args: Any, timeout: float | None = None) -> Any:
        return facade.action(name, *args, timeout=timeout)  # type: ignore[attr-defined]

    call.__name__ = call.__qualname__ = name
    return call


class _TypedCalls(Facade):
    """``call``: the typed action call of the blocking handle and connection."""

    @overload
    def call(
        self,
        action: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R: ...
    @overload
    def call(
        self, action: Callable[Concatenate[Any, P], R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...
    def call(self, action: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call the action defined by the function ``action``: ``h.call(increment, 5)``.

        Type-checked against ``action``'s parameters after the context, with its return type
        (an async action's result is returned, not awaited); sends its wire name. The time
        limit is the handle's (``with_timeout``), else the client's ``timeout``.

        :raises TypeError: when ``action`` is not a registered action function.
        """
        name = action_name_of(action)
        return self.action(name, *wire_args(action, args, kwargs))  # type: ignore[attr-defined]


class SyncEventStream(Facade):
    """A blocking iterator of :class:`~rivetkit.client.connection.ActorEvent`."""

    _target: EventStream

    def __iter__(self) -> Iterator[ActorEvent]:
        return self

    def __next__(self) -> ActorEvent:
        return self.next(None)

    def next(self, timeout: float | None = None) -> ActorEvent:
        """The next event, waiting at most ``timeout`` seconds (``client.timeout``)."""
        try:
            what = f"waiting for the next event of {self._target!r}"
            return self._bridge.run(self._target.__anext__(), timeout, what)
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        """Unsubscribe and end the stream."""
        self._bridge.run(self._target.aclose(), None)

    def __enter__(self) -> SyncEventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncActorConnection(_TypedCalls):
    """The blocking face of an :class:`~rivetkit.client.ActorConnection`.

    Listeners (``on``, ``once``, ``on_error``, ...) are registered on the loop thread and run
    there; the removers they return may be called from any thread.
    """

    _target: ActorConnection

    @property
    def connection(self) -> ActorConnection:
        """The underlying async connection (use it only on the client's loop)."""
        return self._target

    status = attribute(ActorConnection.status)
    is_connected = attribute(ActorConnection.is_connected)
    closed = attribute(ActorConnection.closed)
    actor_id = attribute(ActorConnection.actor_id)
    connection_id = attribute(ActorConnection.connection_id)
    conn_id = connection_id
    error = attribute(ActorConnection.error)

    action = blocking(ActorConnection.action)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return _action_of(self, name)

    start = on_loop(ActorConnection.start)
    wait_open = blocking(ActorConnection.wait_open)
    on = on_loop(ActorConnection.on, threadsafe_remover)
    once = on_loop(ActorConnection.once, threadsafe_remover)
    on_error = on_loop(ActorConnection.on_error, threadsafe_remover)
    on_open = on_loop(ActorConnection.on_open, threadsafe_remover)
    on_close = on_loop(ActorConnection.on_close, threadsafe_remover)
    on_status_change = on_loop(ActorConnection.on_status_change, threadsafe_remover)
    events = on_loop(ActorConnection.events, SyncEventStream)
    iter_events = on_loop(ActorConnection.iter_events, SyncEventStream)
    next_event = blocking(ActorConnection.next_event, bounded=False)
    close = blocking(ActorConnection.close, bounded=False)

    def __enter__(self) -> SyncActorConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Sync{self._target!r}>"


def _sync_handle(owner: Any, handle: ActorHandle) -> SyncActorHandle:
    return SyncActorHandle(owner, handle)


class SyncActorHandle(_TypedCalls):
    """The blocking face of an :class:`~rivetkit.client.ActorHandle`."""

    _target: ActorHandle

    @property
    def handle(self) -> ActorHandle:
        """The underlying async handle (use it only on the client's loop)."""
        return self._target

    query = attribute(ActorHandle.query)
    name = attribute(ActorHandle.name)
    key = attribute(ActorHandle.key)
    actor_id = attribute(ActorHandle.actor_id)
    params = attribute(ActorHandle.params)
    timeout = attribute(ActorHandle.timeout)

    action = blocking(ActorHandle.action)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return _action_of(self, name)

    resolve = blocking(ActorHandle.resolve)
    connect = blocking(
        ActorHandle.connect,
        SyncActorConnection,
        doc="""Open a connection and wait until it is connected.

        Waits up to ``open_timeout`` seconds (``client.connection_open_failed``) and at most
        the client's ``timeout`` (``client.timeout``); on either, the connection is closed.
        ``params`` defaults to the handle's params.
        """,
    )
    send = blocking(ActorHandle.send)
    fetch = blocking(ActorHandle.fetch)
    with_timeout = direct(ActorHandle.with_timeout, _sync_handle)

    def __repr__(self) -> str:
        return f"<Sync{self._target!r}>"


class SyncActorAccessor(Facade):
    """``sync_client.<name>``: the handle factories for one actor name."""

    _target: ActorAccessor

    get = direct(ActorAccessor.get, SyncActorHandle)
    get_or_create = direct(ActorAccessor.get_or_create, SyncActorHandle)
    create = blocking(ActorAccessor.create, SyncActorHandle)
    get_for_id = direct(ActorAccessor.get_for_id, SyncActorHandle)

    def __repr__(self) -> str:
        return f"<Sync{self._target!r}>"


class SyncClient(Facade):
    """A blocking client: :class:`~rivetkit.client.Client`'s options, plus ``timeout``.

    :param timeout: the longest any blocking call waits, in seconds (``client.timeout``
        when exceeded; the operation is cancelled); None (default) waits as long as it takes.
        It is also the async client's ``timeout`` (each call's limit, which calls may set
        with ``timeout=``).
    :param transport: an httpx transport replacing the network (for tests).
    :param ws_connect: replaces ``websockets.asyncio.client.connect`` (see :class:`Client`).

    Use it as ``with SyncClient(...) as client`` or call :meth:`close`.
    """

    _target: Client

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        encoding: str = "bare",
        namespace: str | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        pool: str | None = None,
        disable_metadata_lookup: bool = False,
        metadata_timeout: float | None = 30.0,
        max_input_size: int = DEFAULT_MAX_INPUT_SIZE,
        retry: RetryOptions | None = None,
        timeout: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        ws_connect: WsConnect | None = None,
    ) -> None:
        # Settings are checked here, in the caller's thread, before a thread is started.
        client = Client(
            endpoint,
            encoding=encoding,
            namespace=namespace,
            token=token,
            headers=headers,
            pool=pool,
            disable_metadata_lookup=disable_metadata_lookup,
            metadata_timeout=metadata_timeout,
            max_input_size=max_input_size,
            retry=retry,
            timeout=timeout,
            transport=transport,
            ws_connect=ws_connect,
        )
        super().__init__(None, client)
        self._call_timeout = timeout
        self._loop = LoopThread()
        self._closing = False

    @property
    def client(self) -> Client:
        """The underlying async client (use it only on the client's loop)."""
        return self._target

    config = attribute(Client.config)
    endpoint = attribute(Client.endpoint)
    namespace = attribute(Client.namespace)
    encoding = attribute(Client.encoding)
    closed = attribute(Client.closed)

    metadata = blocking(Client.metadata)
    get = direct(Client.get, SyncActorHandle)
    get_or_create = direct(Client.get_or_create, SyncActorHandle)
    create = blocking(Client.create, SyncActorHandle)
    get_for_id = direct(Client.get_for_id, SyncActorHandle)

    def __getattr__(self, name: str) -> SyncActorAccessor:
        guard_client_method(self, name)
        return SyncActorAccessor(self, ActorAccessor(self._target, name))

    def close(self) -> None:
        """Close connections and HTTP connections, then stop the loop thread. Idempotent."""
        if self._closing:
            return
        self._closing = True
        try:
            self._loop.run(self._target.close(), 30.0)
        finally:
            self._loop.stop()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SyncClient {self.endpoint} {self.encoding}>"
