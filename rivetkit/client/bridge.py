"""The bridge under :mod:`rivetkit.client.sync`: an event loop in a thread, and the factories
that make each blocking member out of the async member it mirrors.

A blocking class (``SyncClient``, ``SyncActorHandle``, ...) is a :class:`Facade`: it holds
the async object (``_target``) and the :class:`LoopThread` that owns it, and declares each
member with one line naming the async member, e.g. ``resolve = blocking(ActorHandle.resolve)``.
The factory copies the async member's name, docstring and parameters, so the blocking API
cannot drift from the async one; ``wrap`` turns an async result (an ActorHandle, ...) into
its blocking face.

- :func:`blocking`: calls the member on the loop and waits for the awaitable it returns
  (a coroutine, or an ``ActorConnection`` that is awaited until open).
- :func:`on_loop`: calls a plain member on the loop thread (members that touch the loop's
  objects: listeners, event streams) and returns its result at once.
- :func:`direct`: calls a plain member in the caller's thread (handle factories).
- :func:`attribute`: a read-only property reading the async object's property.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from rivetkit.client.errors import ActorError
from rivetkit.client.timeouts import timeout_error

__all__ = [
    "Facade",
    "LoopThread",
    "attribute",
    "blocking",
    "direct",
    "on_loop",
    "threadsafe_remover",
]

T = TypeVar("T")
R = TypeVar("R")
W = TypeVar("W")
P = ParamSpec("P")


class LoopThread:
    """An event loop running forever in a daemon thread named ``rivetkit-client``."""

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

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None, what: str = "the call") -> T:
        """Run ``coro`` on the loop and wait for its result (``client.timeout`` naming
        ``what`` after ``timeout`` seconds, the operation being cancelled; None: no limit).

        Errors raised by ``coro`` pass through unchanged (a TimeoutError of its own is not
        taken for the wait's).
        """
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
            done, _ = concurrent.futures.wait([future], timeout)
        except BaseException:  # Ctrl-C in the waiting thread
            future.cancel()
            raise
        if not done:
            future.cancel()
            raise timeout_error(what, timeout or 0.0)
        return future.result()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run the plain function ``fn(*args, **kwargs)`` on the loop thread; its result."""

        async def invoke() -> T:
            return fn(*args, **kwargs)

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


class Facade:
    """The blocking face of one async object: the base of the ``Sync*`` classes.

    ``_target`` is the async object and ``_owner`` the root facade (the SyncClient, passed
    to ``wrap``), which holds the loop (``_loop``) and the bound of bounded calls
    (``_call_timeout``).
    """

    _loop: LoopThread
    _call_timeout: float | None

    def __init__(self, owner: Facade | None, target: Any) -> None:
        self._owner: Facade = self if owner is None else owner
        self._target = target

    @property
    def _bridge(self) -> LoopThread:
        return self._owner._loop

    @property
    def _timeout(self) -> float | None:
        return self._owner._call_timeout


def _keep(owner: Any, value: W) -> W:
    return value


def _mirror(
    fn: Callable[..., Any],
    body: Callable[..., Any],
    wrap: Callable[[Any, Any], Any] | None,
    doc: str | None = None,
) -> Callable[..., Any]:
    """``body`` dressed as ``fn``: same name, docstring (or ``doc``) and parameters."""
    body.__name__ = body.__qualname__ = fn.__name__
    body.__module__ = fn.__module__
    body.__doc__ = fn.__doc__ if doc is None else doc
    signature = inspect.signature(fn)
    if wrap is not None or inspect.iscoroutinefunction(fn):
        signature = signature.replace(return_annotation=inspect.Signature.empty)
    setattr(body, "__signature__", signature)  # noqa: B010 (functions have no typed slot)
    return body


@overload
def blocking(
    fn: Callable[Concatenate[Any, P], Awaitable[R]],
    *,
    bounded: bool = ...,
    doc: str | None = ...,
) -> Callable[Concatenate[Any, P], R]: ...
@overload
def blocking(
    fn: Callable[Concatenate[Any, P], Awaitable[R]],
    wrap: Callable[[Any, R], W],
    *,
    bounded: bool = ...,
    doc: str | None = ...,
) -> Callable[Concatenate[Any, P], W]: ...
def blocking(
    fn: Callable[..., Awaitable[Any]],
    wrap: Callable[[Any, Any], Any] | None = None,
    *,
    bounded: bool = True,
    doc: str | None = None,
) -> Callable[..., Any]:
    """The blocking member mirroring the async member ``fn``: calls it on the loop, awaits
    its result (waiting up to the client's timeout when ``bounded``) and returns
    ``wrap(owner, result)``; ``doc`` replaces the async member's docstring."""
    name = fn.__name__
    convert = wrap or _keep

    def method(self: Facade, *args: Any, **kwargs: Any) -> Any:
        target = self._target

        async def invoke() -> Any:
            return await getattr(target, name)(*args, **kwargs)

        what = f"{type(self).__name__}.{name}() of {target!r}"
        result = self._bridge.run(invoke(), self._timeout if bounded else None, what)
        return convert(self._owner, result)

    return _mirror(fn, method, wrap, doc)


@overload
def on_loop(fn: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]: ...
@overload
def on_loop(
    fn: Callable[Concatenate[Any, P], R], wrap: Callable[[Any, R], W]
) -> Callable[Concatenate[Any, P], W]: ...
def on_loop(
    fn: Callable[..., Any], wrap: Callable[[Any, Any], Any] | None = None
) -> Callable[..., Any]:
    """The blocking member mirroring the plain member ``fn``, called on the loop thread;
    returns ``wrap(owner, result)``."""
    name = fn.__name__
    convert = wrap or _keep

    def method(self: Facade, *args: Any, **kwargs: Any) -> Any:
        result = self._bridge.call(getattr(self._target, name), *args, **kwargs)
        return convert(self._owner, result)

    return _mirror(fn, method, wrap)


@overload
def direct(fn: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]: ...
@overload
def direct(
    fn: Callable[Concatenate[Any, P], R], wrap: Callable[[Any, R], W]
) -> Callable[Concatenate[Any, P], W]: ...
def direct(
    fn: Callable[..., Any], wrap: Callable[[Any, Any], Any] | None = None
) -> Callable[..., Any]:
    """The member mirroring the plain member ``fn``, called in the caller's thread (it must
    not touch the loop); returns ``wrap(owner, result)``."""
    name = fn.__name__
    convert = wrap or _keep

    def method(self: Facade, *args: Any, **kwargs: Any) -> Any:
        return convert(self._owner, getattr(self._target, name)(*args, **kwargs))

    return _mirror(fn, method, wrap)


class _Attribute(Generic[R]):
    """A read-only property reading the async object's attribute of the same name."""

    def __init__(self, getter: Callable[[Any], R]) -> None:
        self.__doc__ = getter.__doc__
        self._name = getter.__name__

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _Attribute[R]: ...
    @overload
    def __get__(self, obj: Facade, owner: type | None = None) -> R: ...
    def __get__(self, obj: Facade | None, owner: type | None = None) -> R | _Attribute[R]:
        if obj is None:
            return self
        value: R = getattr(obj._target, self._name)
        return value

    def __set__(self, obj: Facade, value: Any) -> None:
        raise AttributeError(f"{self._name} is read-only")


def attribute(prop: Callable[[Any], R]) -> _Attribute[R]:
    """The read-only property mirroring the async property ``prop`` (given as
    ``AsyncClass.name``; its value is read from the async object at each access)."""
    if isinstance(prop, property):
        getter: Callable[[Any], R] = prop.fget
        return _Attribute(getter)
    return _Attribute(prop)


def threadsafe_remover(owner: Any, remove: Callable[[], None]) -> Callable[[], None]:
    """``remove`` (a listener's remover, to be called on the loop) callable from any thread."""
    bridge: LoopThread = owner._bridge

    def unsubscribe() -> None:
        bridge.call_soon(remove)

    return unsubscribe
