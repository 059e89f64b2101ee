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
from collections.abc import AsyncIterator
from typing import Any

from rivetkit.drivers.base import Driver
from rivetkit.server.app import RivetApp

__all__ = ["Endpoint", "RivetApp", "create_app", "serve_in_background"]


class Endpoint(str):
    """The base URL of a running server (a ``str``), with the served :attr:`app`."""

    app: RivetApp

    def __new__(cls, url: str, app: RivetApp) -> Endpoint:
        endpoint = super().__new__(cls, url)
        endpoint.app = app
        return endpoint


def create_app(
    registry: Any,
    *,
    driver: Driver | None = None,
    data_dir: str | os.PathLike[str] = ".rivetkit",
) -> RivetApp:
    """The ASGI app serving ``registry``.

    :param registry: the registry made by :func:`rivetkit.setup`
    :param driver: the driver to run on; default an embedded driver on ``data_dir``
    :param data_dir: the embedded driver's data directory (ignored when ``driver`` is given)
    """
    from rivetkit.registry import Registry

    if not isinstance(registry, Registry):
        raise TypeError(
            f"create_app() takes a registry made by rivetkit.setup(), got {type(registry).__name__}"
        )
    if driver is None:
        from rivetkit.drivers.embedded import EmbeddedDriver

        driver = EmbeddedDriver(data_dir)
    return RivetApp(registry, driver)


@contextlib.asynccontextmanager
async def serve_in_background(
    registry: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    driver: Driver | None = None,
) -> AsyncIterator[str]:
    """Serve ``registry`` with uvicorn in the current event loop; yield its endpoint.

    The endpoint is ``"http://HOST:PORT"`` with the real port (``port=0`` picks a free one).
    ``data_dir`` defaults to a temporary directory removed afterwards. On exit the server
    stops (open WebSockets are closed) and the runtime stops: actors sleep, state is
    flushed. Signals are left alone. The endpoint is a ``str`` whose ``app`` attribute is the
    :class:`RivetApp` (``endpoint.app.runtime`` reaches the live actors).
    """
    import asyncio

    from rivetkit.server.runner import Server, bind_socket, uvicorn_config

    with contextlib.ExitStack() as stack:
        if data_dir is None and driver is None:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="rivetkit-"))
        app = create_app(registry, driver=driver, data_dir=data_dir or ".rivetkit")
        sock = bind_socket(host, port)
        stack.callback(sock.close)
        await app.startup()
        try:
            server = Server(uvicorn_config(app, graceful_timeout=2), handle_signals=False)
            task = asyncio.ensure_future(server.serve(sockets=[sock]))
            while not server.started:
                if task.done():
                    task.result()  # raises the startup error
                    raise RuntimeError("the server stopped during startup")
                await asyncio.sleep(0.005)
            bound = sock.getsockname()
            shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
            try:
                yield Endpoint(f"http://{shown}:{bound[1]}", app)
            finally:
                server.request_exit()
                try:
                    await asyncio.wait_for(asyncio.shield(task), 10)
                except asyncio.TimeoutError:
                    server.force_exit = True
                    await task
        finally:
            await app.shutdown()
