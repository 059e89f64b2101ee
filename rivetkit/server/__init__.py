"""The embedded-mode server: an ASGI app serving a registry, and helpers to run it.

``rivetkit serve app.py`` runs it under uvicorn. It is a plain ASGI app, so any ASGI server
runs it (``uvicorn module:app`` with ``app = create_app(registry)``), and it mounts inside
Starlette or FastAPI. Mounted apps get no lifespan events there, so hand the runtime's
lifespan to the host app::

    from fastapi import FastAPI
    from rivetkit.server import create_app
    from myapp import registry

    rivet = create_app(registry)
    api = FastAPI(lifespan=rivet.lifespan)      # starts and stops the actors
    api.mount("/rivet", rivet)                  # clients use http://host:port/rivet

(Starlette: ``Starlette(routes=[Mount("/rivet", app=rivet)], lifespan=rivet.lifespan)``.)
Without lifespan the runtime starts at the first request, but then nothing flushes the
actors' state at exit.

For tests, :func:`serve_in_background` runs a real server on 127.0.0.1 in the current event
loop::

    async with serve_in_background(registry) as endpoint:   # "http://127.0.0.1:PORT"
        ...
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Sequence
from typing import Any

from rivetkit.drivers.base import Driver
from rivetkit.server.app import RivetApp
from rivetkit.server.cors import OriginPolicy
from rivetkit.server.limits import ServerLimits

__all__ = ["Endpoint", "RivetApp", "ServerLimits", "create_app", "serve_in_background"]


class Endpoint(str):
    """The base URL of a running server (a ``str``), with the served :attr:`app` and the
    uvicorn :attr:`server` serving it (``None`` when not known)."""

    app: RivetApp
    server: Any

    def __new__(cls, url: str, app: RivetApp, server: Any = None) -> Endpoint:
        endpoint = super().__new__(cls, url)
        endpoint.app = app
        endpoint.server = server
        return endpoint


def create_app(
    registry: Any,
    *,
    driver: Driver | None = None,
    data_dir: str | os.PathLike[str] = ".rivetkit",
    cors_origins: Sequence[str] | None = None,
    allowed_hosts: Sequence[str] | None = None,
    listen_host: str | None = None,
) -> RivetApp:
    """The ASGI app serving ``registry``.

    Browser pages may call it only from allowed origins, and on a loopback listener only
    through loopback ``Host`` names (see :mod:`rivetkit.server.cors`).

    :param registry: the registry made by :func:`rivetkit.setup`
    :param driver: the driver to run on; default an embedded driver on ``data_dir``
    :param data_dir: the embedded driver's data directory (ignored when ``driver`` is given)
    :param cors_origins: web origins allowed to call the server, e.g.
        ``["https://app.example.com", "http://localhost:*"]``; ``["*"]`` allows any. Default
        (None): loopback origins only (``http(s)://localhost``, ``127.0.0.1``, ``[::1]``,
        any port). Requests without ``Origin`` (non-browser clients) are always allowed
    :param allowed_hosts: ``Host`` names allowed besides loopback ones (``"*.example.com"``
        for subdomains, ``"*"`` for any); when given, the Host check applies on any listener
    :param listen_host: the address the server listens on, when known (``rivetkit serve``
        and :func:`serve_in_background` pass it): a loopback one refuses non-loopback
        ``Host`` names (DNS rebinding). None (an app run by another ASGI server): no Host
        check unless ``allowed_hosts`` are given; pass the address you listen on
    """
    from rivetkit.registry import Registry

    if not isinstance(registry, Registry):
        raise TypeError(
            f"create_app() takes a registry made by rivetkit.setup(), got {type(registry).__name__}"
        )
    if driver is None:
        from rivetkit.drivers.embedded import EmbeddedDriver

        driver = EmbeddedDriver(data_dir)
    policy = OriginPolicy(
        cors_origins=cors_origins, allowed_hosts=allowed_hosts, listen_host=listen_host
    )
    return RivetApp(registry, driver, origin_policy=policy)


@contextlib.asynccontextmanager
async def serve_in_background(
    registry: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    driver: Driver | None = None,
    cors_origins: Sequence[str] | None = None,
    allowed_hosts: Sequence[str] | None = None,
    limits: ServerLimits | None = None,
) -> AsyncIterator[str]:
    """Serve ``registry`` with uvicorn in the current event loop; yield its endpoint.

    The endpoint is ``"http://HOST:PORT"`` with the real port (``port=0`` picks a free one).
    ``data_dir`` defaults to a temporary directory removed afterwards. On exit the server
    stops (open WebSockets are closed) and the runtime stops: actors sleep, state is
    flushed. Signals are left alone. The endpoint is a ``str`` whose ``app`` attribute is the
    :class:`RivetApp` (``endpoint.app.runtime`` reaches the live actors). ``cors_origins``
    and ``allowed_hosts`` are :func:`create_app`'s; ``limits`` the server's
    (:class:`~rivetkit.server.limits.ServerLimits`: buffers, timeouts, header and connection
    caps; the defaults when None).
    """
    import asyncio

    from rivetkit.server.runner import Server, bind_socket, uvicorn_config

    with contextlib.ExitStack() as stack:
        if data_dir is None and driver is None:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="rivetkit-"))
        app = create_app(
            registry,
            driver=driver,
            data_dir=data_dir or ".rivetkit",
            cors_origins=cors_origins,
            allowed_hosts=allowed_hosts,
            listen_host=host,
        )
        sock = bind_socket(host, port)
        stack.callback(sock.close)
        await app.startup()
        try:
            server = Server(
                uvicorn_config(app, graceful_timeout=2, limits=limits), handle_signals=False
            )
            task = asyncio.ensure_future(server.serve(sockets=[sock]))
            while not server.started:
                if task.done():
                    task.result()  # raises the startup error
                    raise RuntimeError("the server stopped during startup")
                await asyncio.sleep(0.005)
            bound = sock.getsockname()
            shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
            try:
                yield Endpoint(f"http://{shown}:{bound[1]}", app, server)
            finally:
                server.request_exit()
                try:
                    await asyncio.wait_for(asyncio.shield(task), 10)
                except asyncio.TimeoutError:
                    server.force_exit = True
                    await task
        finally:
            await app.shutdown()
