"""``SyncClient``: the same API as :class:`~rivetkit.client.Client`, blocking.

    with SyncClient("http://127.0.0.1:6420") as client:
        counter = client.counter.get_or_create(["k"])
        print(counter.increment(5))
        with counter.connect() as conn:
            conn.on("newCount", print)
            conn.increment(1)

How it works: the client runs an asyncio event loop in a private daemon thread and an async
:class:`~rivetkit.client.Client` on it; every blocking call submits a coroutine to that loop
and waits for its result (up to the client's ``timeout``, None by default: no limit).

Thread safety: a SyncClient, its handles and connections may be used from any number of
threads at once; calls are serialized onto the loop thread, where the async client does the
work. Callbacks given to ``on``/``once``/``on_error``/``on_open``/``on_close``/
``on_status_change`` run *in the loop thread*: keep them short, guard shared data, and do not
call the blocking API from inside them (that would wait on the thread that must answer: it
raises RuntimeError instead). Iterating ``conn.events()`` blocks the calling thread only.
Interrupting a blocking call (Ctrl-C) cancels the operation on the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, TypeVar

import httpx

from rivetkit.client.client import Client
from rivetkit.client.config import RetryOptions
from rivetkit.client.connection import ActorConnection, ActorEvent, ConnStatus, EventStream
from rivetkit.client.errors import ActorError
from rivetkit.client.handle import ActorHandle, QueueSendResult
from rivetkit.client.query import DEFAULT_MAX_INPUT_SIZE, KeyArg

__all__ = [
    "SyncActorConnection",
    "SyncActorHandle",
    "SyncClient",
    "SyncEventStream",
]

T = TypeVar("T")

_UNSET: Any = object()


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name="rivetkit-client", daemon=True)
        self.thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError(
                "the blocking rivetkit client API cannot be used from its own callbacks"
            )
        if self.loop.is_closed() or not self.thread.is_alive():
            coro.close()
            raise ActorError.client("client_closed", "the client is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ActorError.client(
                "timeout", f"the call did not finish within {timeout} s"
            ) from None
        except BaseException:
            future.cancel()
            raise

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run the plain function ``fn(*args)`` on the loop thread and return its result."""

        async def invoke() -> T:
            return fn(*args)

        return self.run(invoke(), None)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)`` on the loop thread without waiting."""
        if threading.current_thread() is self.thread:
            fn(*args)
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        """Stop the loop and wait for the thread."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join()


class SyncEventStream:
    """A blocking iterator of :class:`~rivetkit.client.connection.ActorEvent`."""

    def __init__(self, runner: _LoopThread, stream: EventStream) -> None:
        self._runner = runner
        self._stream = stream

    def __iter__(self) -> Iterator[ActorEvent]:
        return self

    def __next__(self) -> ActorEvent:
        try:
            return self._runner.run(self._stream.__anext__(), None)
        except StopAsyncIteration:
            raise StopIteration from None

    def next(self, timeout: float | None = None) -> ActorEvent:
        """The next event, waiting at most ``timeout`` seconds (``client.timeout``)."""
        try:
            return self._runner.run(self._stream.__anext__(), timeout)
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        """Unsubscribe and end the stream."""
        self._runner.run(self._stream.aclose(), None)

    def __enter__(self) -> SyncEventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncActorConnection:
    """The blocking face of an :class:`~rivetkit.client.ActorConnection`."""

    def __init__(self, client: SyncClient, conn: ActorConnection) -> None:
        self._client = client
        self._conn = conn

    @property
    def connection(self) -> ActorConnection:
        """The underlying async connection (use it only on the client's loop)."""
        return self._conn

    @property
    def status(self) -> ConnStatus:
        """``idle``, ``connecting``, ``connected`` or ``disconnected``."""
        return self._conn.status

    @property
    def is_connected(self) -> bool:
        """True while connected."""
        return self._conn.is_connected

    @property
    def actor_id(self) -> str | None:
        """The actor id from the last ``Init``."""
        return self._conn.actor_id

    @property
    def connection_id(self) -> str | None:
        """The connection id from the last ``Init``."""
        return self._conn.connection_id

    conn_id = connection_id

    @property
    def error(self) -> ActorError | None:
        """The error the connection gave up on, if it did."""
        return self._conn.error

    def action(self, name: str, *args: Any) -> Any:
        """Call action ``name`` over the connection and wait for its result."""
        return self._client._run(self._conn.action(name, *args))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any) -> Any:
            return self.action(name, *args)

        call.__name__ = call.__qualname__ = name
        return call

    def wait_open(self, timeout: float | None = None) -> None:
        """Block until connected (see :meth:`ActorConnection.wait_open`)."""
        self._client._run(self._conn.wait_open(timeout))

    def _register(
        self, method: Callable[..., Callable[[], None]], *args: Any
    ) -> Callable[[], None]:
        runner = self._client._runner
        remove = runner.call(method, *args)

        def unsubscribe() -> None:
            runner.call_soon(remove)

        return unsubscribe

    def on(self, event: str, callback: Callable[..., Any]) -> Callable[[], None]:
        """Call ``callback(*args)`` (in the loop thread) on each event; returns the remover."""
        return self._register(self._conn.on, event, callback)

    def once(self, event: str, callback: Callable[..., Any]) -> Callable[[], None]:
        """Like :meth:`on`, for the next event only."""
        return self._register(self._conn.once, event, callback)

    def on_error(self, callback: Callable[[ActorError], Any]) -> Callable[[], None]:
        """Call ``callback(error)`` (in the loop thread) on connection-level errors."""
        return self._register(self._conn.on_error, callback)

    def on_open(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """Call ``callback()`` (in the loop thread) each time the connection opens."""
        return self._register(self._conn.on_open, callback)

    def on_close(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """Call ``callback()`` (in the loop thread) each time the connection is lost."""
        return self._register(self._conn.on_close, callback)

    def on_status_change(self, callback: Callable[[ConnStatus], Any]) -> Callable[[], None]:
        """Call ``callback(status)`` (in the loop thread) on each status change."""
        return self._register(self._conn.on_status_change, callback)

    def events(self, *names: str) -> SyncEventStream:
        """A blocking iterator over the events ``names`` (all received events without names)."""
        stream = self._client._runner.call(self._conn.events, *names)
        return SyncEventStream(self._client._runner, stream)

    def iter_events(self, name: str | None = None) -> SyncEventStream:
        """``events(name)``, or ``events()`` when ``name`` is None."""
        return self.events() if name is None else self.events(name)

    def next_event(self, name: str, timeout: float | None = None) -> list[Any]:
        """Wait for the next event ``name`` and return its args."""
        return self._client._runner.run(self._conn.next_event(name, timeout), None)

    def close(self) -> None:
        """Close the connection (``1000 "Disposed"``)."""
        self._client._runner.run(self._conn.close(), None)

    def __enter__(self) -> SyncActorConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Sync{self._conn!r}>"


class SyncActorHandle:
    """The blocking face of an :class:`~rivetkit.client.ActorHandle`."""

    def __init__(self, client: SyncClient, handle: ActorHandle) -> None:
        self._client = client
        self._handle = handle

    @property
    def handle(self) -> ActorHandle:
        """The underlying async handle (use it only on the client's loop)."""
        return self._handle

    @property
    def name(self) -> str:
        """The actor's name."""
        return self._handle.name

    @property
    def key(self) -> list[str] | None:
        """The actor's key (None for a handle made from an actor id)."""
        return self._handle.key

    @property
    def actor_id(self) -> str | None:
        """The actor id of a get_for_id/create handle, else None."""
        return self._handle.actor_id

    def action(self, name: str, *args: Any) -> Any:
        """Call action ``name`` over HTTP and wait for its result."""
        return self._client._run(self._handle.action(name, *args))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any) -> Any:
            return self.action(name, *args)

        call.__name__ = call.__qualname__ = name
        return call

    def resolve(self) -> str:
        """The actor's id (see :meth:`ActorHandle.resolve`)."""
        return self._client._run(self._handle.resolve())

    def connect(
        self, params: Any = _UNSET, *, open_timeout: float | None = 30.0
    ) -> SyncActorConnection:
        """Open a connection and wait until it is connected.

        Waits up to ``open_timeout`` seconds (``client.connection_open_failed``) and at most
        the client's ``timeout`` (``client.timeout``); on either, the connection is closed.
        """
        handle = self._handle

        async def open_conn() -> ActorConnection:
            if params is _UNSET:
                conn = handle.connect(open_timeout=open_timeout)
            else:
                conn = handle.connect(params, open_timeout=open_timeout)
            return await conn

        return SyncActorConnection(self._client, self._client._run(open_conn()))

    def send(
        self, queue: str, body: Any = None, *, wait: bool = False, timeout: float | None = None
    ) -> QueueSendResult | None:
        """Send to the actor's queue (see :meth:`ActorHandle.send`)."""
        return self._client._run(self._handle.send(queue, body, wait=wait, timeout=timeout))

    def fetch(
        self,
        path: str,
        *,
        method: str = "GET",
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """A raw HTTP request to the actor (see :meth:`ActorHandle.fetch`)."""
        return self._client._run(
            self._handle.fetch(path, method=method, content=content, headers=headers)
        )

    def __repr__(self) -> str:
        return f"<Sync{self._handle!r}>"


class SyncActorAccessor:
    """``sync_client.<name>``: the handle factories for one actor name."""

    def __init__(self, client: SyncClient, name: str) -> None:
        self._client = client
        self._name = name

    def get(self, key: KeyArg = None, *, params: Any = None) -> SyncActorHandle:
        """See :meth:`SyncClient.get`."""
        return self._client.get(self._name, key, params=params)

    def get_or_create(
        self,
        key: KeyArg = None,
        *,
        input: Any = None,
        params: Any = None,
        region: str | None = None,
    ) -> SyncActorHandle:
        """See :meth:`SyncClient.get_or_create`."""
        return self._client.get_or_create(
            self._name, key, input=input, params=params, region=region
        )

    def create(
        self,
        key: KeyArg = None,
        *,
        input: Any = None,
        params: Any = None,
        region: str | None = None,
    ) -> SyncActorHandle:
        """See :meth:`SyncClient.create`."""
        return self._client.create(self._name, key, input=input, params=params, region=region)

    def get_for_id(self, actor_id: str, *, params: Any = None) -> SyncActorHandle:
        """See :meth:`SyncClient.get_for_id`."""
        return self._client.get_for_id(self._name, actor_id, params=params)


class SyncClient:
    """A blocking client: :class:`~rivetkit.client.Client`'s options, plus ``timeout``.

    :param timeout: the longest any blocking call waits, in seconds (``client.timeout``
        when exceeded; the operation is cancelled); None (default) waits as long as it takes.
    :param transport: an httpx transport replacing the network (for tests).

    Use it as ``with SyncClient(...) as client`` or call :meth:`close`.
    """

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
            transport=transport,
        )
        self._timeout = timeout
        self._client = client
        self._runner = _LoopThread()
        self._closed = False

    @property
    def client(self) -> Client:
        """The underlying async client (use it only on the client's loop)."""
        return self._client

    @property
    def endpoint(self) -> str:
        """The endpoint in use."""
        return self._client.endpoint

    @property
    def encoding(self) -> str:
        """``bare``, ``cbor`` or ``json``."""
        return self._client.encoding

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro, self._timeout)

    def metadata(self) -> dict[str, Any]:
        """The server's ``GET /metadata`` answer."""
        return self._run(self._client.metadata())

    def get(self, name: str, key: KeyArg = None, *, params: Any = None) -> SyncActorHandle:
        """A handle on the existing actor ``(name, key)`` (see :meth:`Client.get`)."""
        return SyncActorHandle(self, self._client.get(name, key, params=params))

    def get_or_create(
        self,
        name: str,
        key: KeyArg = None,
        *,
        input: Any = None,
        params: Any = None,
        region: str | None = None,
    ) -> SyncActorHandle:
        """A handle on ``(name, key)``, created on first use (see :meth:`Client.get_or_create`)."""
        handle = self._client.get_or_create(name, key, input=input, params=params, region=region)
        return SyncActorHandle(self, handle)

    def create(
        self,
        name: str,
        key: KeyArg = None,
        *,
        input: Any = None,
        params: Any = None,
        region: str | None = None,
    ) -> SyncActorHandle:
        """Create a new actor and return a handle on it (see :meth:`Client.create`)."""
        handle = self._run(
            self._client.create(name, key, input=input, params=params, region=region)
        )
        return SyncActorHandle(self, handle)

    def get_for_id(self, name: str, actor_id: str, *, params: Any = None) -> SyncActorHandle:
        """A handle on the actor with id ``actor_id``."""
        return SyncActorHandle(self, self._client.get_for_id(name, actor_id, params=params))

    def __getattr__(self, name: str) -> SyncActorAccessor:
        if name.startswith("_"):
            raise AttributeError(name)
        return SyncActorAccessor(self, name)

    def close(self) -> None:
        """Close connections and HTTP connections, then stop the loop thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._runner.run(self._client.close(), 30.0)
        finally:
            self._runner.stop()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SyncClient {self.endpoint} {self.encoding}>"
