"""Engine mode of ``rivetkit serve``: the process is an envoy; it listens only for probes.

::

    rivetkit serve app.py --engine http://127.0.0.1:6420 [--namespace NS] [--pool NAME] [--token T]
    rivetkit serve app.py --engine-spawn [--data DIR]

With ``--engine URL`` the process joins the pool ``--pool`` of the engine at URL (registering
the pool if the engine does not know it). ``--engine URL,URL,...`` names several nodes of one
engine cluster: the envoy connects to the first that answers and moves to the next when its
node goes away (see :class:`~.endpoints.Endpoints`). With ``--engine-spawn`` it first starts a
local engine from the npm package ``@rivetkit/engine-cli`` (see :mod:`.spawn`) on
127.0.0.1:6420 (api-peer 6421, metrics 6430), with its data under ``<--data>/engine``, and
stops it on exit; clients keep their default endpoint, ``http://127.0.0.1:6420``.

Clients talk to the engine's gateway, never to this process. Our own listener
(``--host``/``--port``, default 127.0.0.1:6440 in engine mode; ``--port 0`` picks a free one;
the address is printed at start) answers only:

* ``GET /health``: 200 ``ok`` while the envoy session is up, 503 otherwise (a JSON status
  with ``?verbose``);
* ``GET /metrics``: the embedded server's handler (``RIVETKIT_METRICS_TOKEN`` asks for a
  bearer token, ``RIVETKIT_METRICS=0`` answers 403): Prometheus text (envoy connection,
  actors by state, frames, KV requests, tunnel traffic), then the runtime's families
  (:mod:`rivetkit.metrics`: ``rivetkit_info``, ``rivetkit_actor_*``, process-wide ones).

SIGTERM and SIGINT drain: the envoy says ``Stopping``, the engine moves the actors away (each
is stopped here with its state saved), then the socket closes and a spawned engine stops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from rivetkit.errors import RivetError

from .driver import EngineDriver
from .spawn import ENGINE_VERSION, LocalEngine, find_engine_binary

if TYPE_CHECKING:
    from rivetkit.runtime.live_actors import Runtime

__all__ = ["DEFAULT_ENGINE_MODE_PORT", "EngineModeError", "StatusApp", "serve_engine_mode"]

logger = logging.getLogger("rivetkit.cli")

#: Our own listener's default port in engine mode (the engine uses 6420, 6421 and 6430).
DEFAULT_ENGINE_MODE_PORT: Final = 6440

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class EngineModeError(Exception):
    """Engine mode cannot start; the message is one line for the user."""


class StatusApp:
    """The ASGI app of our listener in engine mode: ``/health`` and ``/metrics``."""

    def __init__(self, driver: EngineDriver, runtime: Runtime | None = None) -> None:
        self.driver = driver
        #: The runtime whose metrics ``/metrics`` serves after the envoy's families (None, or
        #: its metrics off: 403 ``metrics not enabled``, as on the embedded server).
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1008, "reason": "not_found"})
            return
        if scope["type"] != "http":
            return
        path = scope.get("path", "/")
        status = self.driver.status()
        if path == "/health":
            healthy = bool(status["connected"])
            if b"verbose" in scope.get("query_string", b""):
                body = json.dumps(status).encode()
                content_type = b"application/json"
            else:
                body = b"ok" if healthy else b"envoy disconnected"
                content_type = b"text/plain; charset=utf-8"
            await _respond(send, 200 if healthy else 503, content_type, body)
        elif path == "/metrics":
            # The embedded server's handler: the same token and on/off switches.
            from rivetkit.metrics.exposition import scrape_response

            authorization = next(
                (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"),
                None,
            )
            code, content_type, body = scrape_response(
                self.runtime.metrics if self.runtime is not None else None,
                authorization,
                prefix=metrics_text(status).encode(),
            )
            await _respond(send, code, content_type, body)
        else:
            body = json.dumps(
                {
                    "group": "actor",
                    "code": "not_found",
                    "message": "engine mode: clients use the engine's gateway; this port serves "
                    "/health and /metrics",
                }
            ).encode()
            await _respond(send, 404, b"application/json", body)


async def _respond(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def metrics_text(status: dict[str, Any]) -> str:
    """The Prometheus exposition of :meth:`EngineDriver.status`."""
    lines = [
        "# HELP rivetkit_envoy_connected Whether the envoy session with the engine is up.",
        "# TYPE rivetkit_envoy_connected gauge",
        f"rivetkit_envoy_connected {1 if status['connected'] else 0}",
        "# HELP rivetkit_envoy_actors Actors placed on this envoy, by state.",
        "# TYPE rivetkit_envoy_actors gauge",
    ]
    for state, count in status["actors"].items():
        lines.append(f'rivetkit_envoy_actors{{state="{state}"}} {count}')
    lines += [
        "# HELP rivetkit_envoy_pending_events Events not yet acknowledged by the engine.",
        "# TYPE rivetkit_envoy_pending_events gauge",
        f"rivetkit_envoy_pending_events {status['pending_events']}",
    ]
    for name, value in sorted(status["stats"].items()):
        metric = f"rivetkit_envoy_{name}_total"
        lines += [f"# TYPE {metric} counter", f"{metric} {value}"]
    tunnel = status["tunnel"]
    for name in ("http_in_flight", "websockets_open"):
        if name in tunnel:
            metric = f"rivetkit_tunnel_{name}"
            lines += [f"# TYPE {metric} gauge", f"{metric} {tunnel[name]}"]
    for name in ("http_total", "websockets_total"):
        if name in tunnel:
            metric = f"rivetkit_tunnel_{name.replace('_total', '')}_requests_total"
            lines += [f"# TYPE {metric} counter", f"{metric} {tunnel[name]}"]
    return "\n".join(lines) + "\n"


def spawn_local_engine(data_dir: str | os.PathLike[str], token: str | None) -> LocalEngine:
    """Start the engine of ``--engine-spawn`` (blocking until ``/health`` answers)."""
    binary = find_engine_binary()
    if binary is None:
        raise EngineModeError(
            "--engine-spawn needs the Rivet Engine binary: run `npm install "
            f"@rivetkit/engine-cli@{ENGINE_VERSION}` in this folder (or a parent), or set "
            "RIVET_ENGINE_BINARY to the rivet-engine binary"
        )
    engine = LocalEngine(binary, Path(data_dir) / "engine", token=token)
    try:
        engine.start()
    except RuntimeError as exc:
        raise EngineModeError(str(exc)) from None
    return engine


async def serve_engine_mode(
    registry: Any,
    *,
    target: str,
    engine_url: str | None,
    spawn: bool,
    namespace: str,
    pool: str,
    token: str | None,
    host: str,
    port: int | None,
    data_dir: str,
) -> int:
    """Run ``rivetkit serve`` in engine mode until SIGTERM/SIGINT; the exit status.

    :raises EngineModeError: the engine cannot be started or joined, or the port is taken
    """
    import rivetkit
    from rivetkit.runtime.live_actors import Runtime
    from rivetkit.server.runner import Server, bind_socket

    engine: LocalEngine | None = None
    if spawn:
        engine = await asyncio.to_thread(spawn_local_engine, data_dir, token)
        engine_url = engine.endpoint
    assert engine_url is not None
    try:
        try:
            driver = EngineDriver(
                engine_url,
                namespace=namespace,
                pool=pool,
                token=token,
                create_namespace=spawn,
            )
        except ValueError as exc:
            raise EngineModeError(f"--engine: {exc}") from None
        runtime = Runtime(registry, driver)
        try:
            await runtime.start()
        except RivetError as exc:
            raise EngineModeError(exc.message) from None
        try:
            listen_port = DEFAULT_ENGINE_MODE_PORT if port is None else port
            try:
                sock = bind_socket(host, listen_port)
            except OSError as exc:
                raise EngineModeError(
                    f"cannot listen on {host}:{listen_port}: {exc.strerror or exc} "
                    "(engine mode listens for /health and /metrics; pick another --port)"
                ) from None
            server = Server(_uvicorn_config(StatusApp(driver, runtime)), handle_signals=True)
            shown = f"[{host}]" if ":" in host else host
            logger.info(
                "serving %s (actors: %s) as envoy %s of pool %r, namespace %r, on the engine "
                "%s%s; clients use %s; health and metrics on http://%s:%d; speedups %s",
                target,
                ", ".join(registry.actors) or "none",
                driver.envoy_key,
                pool,
                namespace,
                driver.endpoints.describe(),
                " (spawned)" if engine is not None else "",
                " or ".join(driver.endpoints),
                shown,
                sock.getsockname()[1],
                "on" if rivetkit.SPEEDUPS else "off",
            )
            watcher = asyncio.ensure_future(_exit_on_failure(driver, server))
            try:
                await server.serve(sockets=[sock])
            finally:
                watcher.cancel()
                sock.close()
            logger.info("stopping: the engine moves the actors away; their state is saved")
        finally:
            started = time.monotonic()
            await runtime.stop()
            logger.info("envoy stopped in %.2f s", time.monotonic() - started)
        if driver.failure is not None:
            logger.error("the envoy failed: %s", driver.failure)
            return 1
        if runtime.failed_final_saves:
            logger.error(
                "%d actor(s) could not save their state before stopping: their unsaved "
                "changes are lost (see the errors above)",
                runtime.failed_final_saves,
            )
            return 1
        return 0
    finally:
        if engine is not None:
            await asyncio.to_thread(engine.stop)


async def _exit_on_failure(driver: EngineDriver, server: Any) -> None:
    failed = driver.failed
    if failed is None:
        return
    await failed.wait()
    logger.error("the envoy is gone for good (%s); exiting", driver.failure)
    server.request_exit()


def _uvicorn_config(app: StatusApp) -> Any:
    import importlib.util

    import uvicorn

    httptools = importlib.util.find_spec("httptools") is not None
    return uvicorn.Config(
        app,
        lifespan="off",
        http="httptools" if httptools else "h11",
        loop="none",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_config=None,
        timeout_graceful_shutdown=5,
        ws="none",
    )
