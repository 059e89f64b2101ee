"""The ``rivetkit`` command.

::

    rivetkit --version
    rivetkit serve PATH.py[:registry] | module[:registry]
                   [--host 127.0.0.1] [--port 6420] [--data DIR]
                   [--engine URL | --engine-spawn] [--namespace default] [--pool default]
                   [--token T] [--log-level info] [--log-format text|json] [--access-log]
                   [--reload [--reload-dir DIR]...]
                   [--cors-origin ORIGIN]... [--allowed-host NAME]...
    rivetkit inspect token ACTOR_ID [--data DIR]

``serve`` imports ``PATH.py`` (its folder first on ``sys.path``, as ``python PATH.py`` would)
or the module ``pkg.module`` (the current directory first on ``sys.path``; see
:mod:`rivetkit.cli_target`), takes its ``registry`` (or the attribute named after ``:``) and
serves it in embedded mode:
one process, data in ``--data`` (default ``./.rivetkit``), listening on ``--host``/``--port``
(default 127.0.0.1:6420, the official client's default). SIGTERM and SIGINT stop it
gracefully: connections close, every actor sleeps and its state is flushed; a second SIGINT
cuts the wait for open connections short.

Engine mode: ``--engine URL`` (or ``URL,URL,...``: nodes of one engine) joins the pool
``--pool`` of namespace ``--namespace`` of a Rivet Engine as an envoy (registering the pool if
missing); ``--engine-spawn`` first starts a local engine from the npm package
``@rivetkit/engine-cli`` on 127.0.0.1:6420 (data under ``--data``/engine) and stops it on exit.
Clients then use the engine's URL; our own listener serves only ``/health`` and ``/metrics``
(default port 6440 in engine mode). See :mod:`rivetkit.drivers.engine.serve`.

``--reload`` runs the server in a child process and restarts it when a watched ``*.py``
file changes (see :mod:`rivetkit.reload`); ``--log-format json`` and ``--access-log`` are
described in :mod:`rivetkit.logs` and :mod:`rivetkit.server.request_log`.

Every error is one line on stderr (``rivetkit: error: ...``) saying how to fix it; set
``RIVETKIT_TRACEBACK=1`` (or ``--log-level debug``) for full tracebacks.

Exit status: 0 after a graceful stop; 1 when the server cannot start (for example, another
process uses the data directory, or the port is taken); 2 for usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from rivetkit.cli_target import CliError, load_registry, want_traceback
from rivetkit.logs import LOG_FORMATS, LOG_LEVELS, configure_logging

__all__ = ["CliError", "load_registry", "main"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6420


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors in one line that names the help to read."""

    def error(self, message: str) -> NoReturn:
        """Print ``rivetkit: error: MESSAGE (see PROG --help)`` and exit with status 2."""
        self.exit(2, f"rivetkit: error: {message} (see {self.prog} --help)\n")


def _version_line() -> str:
    import rivetkit

    speedups = "speedups: on (compiled)" if rivetkit.SPEEDUPS else "speedups: off (pure Python)"
    return f"rivetkit {rivetkit.__version__} ({speedups}; Python {sys.version.split()[0]})"


def _parser() -> argparse.ArgumentParser:
    from rivetkit.server.limits import add_cli_options as add_limit_options

    parser = _Parser(prog="rivetkit", description="Stateful actors compatible with RivetKit.")
    parser.add_argument(
        "--version", action="store_true", help="print the version and whether speedups are on"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve the actors of a registry",
        description="Serve the registry defined in PATH.py or in the module pkg.module "
        "(attribute 'registry', or the name after ':').",
    )
    serve.add_argument(
        "target",
        metavar="PATH.py[:registry]",
        help="the app file, or its module: pkg.module[:registry]",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (%(default)s)")
    serve.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port to listen on ({DEFAULT_PORT}; 6440 in engine mode, where it serves only "
        "/health and /metrics; 0: any free port)",
    )
    serve.add_argument(
        "--data", default=".rivetkit", metavar="DIR", help="data directory (%(default)s)"
    )
    engine = serve.add_mutually_exclusive_group()
    engine.add_argument(
        "--engine",
        metavar="URL[,URL...]",
        help="run as an envoy of this Rivet Engine; several nodes of one engine cluster as "
        "comma-separated URLs (used in turn: the next one when a node cannot be reached)",
    )
    engine.add_argument(
        "--engine-spawn", action="store_true", help="start a local Rivet Engine and use it"
    )
    serve.add_argument("--namespace", default="default", help="engine namespace (%(default)s)")
    serve.add_argument("--pool", default="default", help="engine pool name (%(default)s)")
    serve.add_argument("--token", default=None, help="engine token")
    add_limit_options(serve)
    serve.add_argument(
        "--cors-origin",
        action="append",
        dest="cors_origins",
        metavar="ORIGIN",
        help="web origin allowed to call the server, e.g. https://app.example.com or "
        "http://localhost:* (repeatable; '*' allows any; default: loopback origins only)",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        dest="allowed_hosts",
        metavar="NAME",
        help="Host name accepted besides loopback ones, e.g. app.example.com or "
        "*.example.com (repeatable; checked on any listener once given)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=LOG_LEVELS,
        help="log level of every logger: rivetkit's, uvicorn's, yours (%(default)s)",
    )
    serve.add_argument(
        "--log-format",
        default="text",
        choices=LOG_FORMATS,
        help="text lines, or one JSON object per line (%(default)s)",
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per HTTP request: method, path, status, duration, request id",
    )
    serve.add_argument(
        "--reload",
        action="store_true",
        help="restart the server when a watched *.py file changes (development)",
    )
    serve.add_argument(
        "--reload-dir",
        action="append",
        dest="reload_dirs",
        metavar="DIR",
        help="folder to watch with --reload (repeatable; default: the app's folder)",
    )
    # A listening socket inherited from the --reload supervisor.
    serve.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)
    inspect = commands.add_parser(
        "inspect", help="inspector tools", description="Tools for the actor inspector."
    )
    inspect_commands = inspect.add_subparsers(dest="inspect_command", metavar="WHAT")
    token = inspect_commands.add_parser(
        "token",
        help="print an actor's inspector token",
        description="Print the inspector token of ACTOR_ID (last line), reading the embedded "
        "data directory (creating the token if the actor has none yet). Works while a server "
        "runs on the directory.",
    )
    token.add_argument("actor_id", metavar="ACTOR_ID", help="the actor's id")
    token.add_argument(
        "--data",
        "--data-dir",
        dest="data",
        default=".rivetkit",
        metavar="DIR",
        help="data directory (%(default)s)",
    )
    return parser


def _inspect_token(args: argparse.Namespace) -> int:
    from rivetkit.inspector.token import token_from_data_dir

    try:
        token = token_from_data_dir(args.data, args.actor_id)
    except LookupError as exc:
        raise CliError(
            f"{exc.args[0] if exc.args else exc}; check ACTOR_ID and --data (the directory the "
            "server was started with; GET /actors?name=NAME lists the actor ids)"
        ) from None
    except Exception as exc:  # a corrupt or foreign file, a lock held too long
        raise CliError(f"cannot read the inspector token: {exc}") from None
    print(f"inspector token of actor {args.actor_id}:", file=sys.stderr)
    print(token)
    return 0


async def _serve(args: argparse.Namespace, registry: Any, path: Path) -> int:
    import rivetkit
    from rivetkit.errors import RivetError
    from rivetkit.server import create_app
    from rivetkit.server.limits import from_cli as limits_from_cli
    from rivetkit.server.runner import Server, bind_socket, uvicorn_config

    app_access_log = bool(args.access_log)

    log = logging.getLogger("rivetkit.cli")
    app = create_app(
        registry,
        data_dir=args.data,
        cors_origins=args.cors_origins,
        allowed_hosts=args.allowed_hosts,
        listen_host=args.host,
    )
    app.access_log = app_access_log
    try:
        await app.startup()
    except RivetError as exc:
        raise CliError(exc.message) from None
    except OSError as exc:
        raise CliError(f"cannot open the data directory {args.data}: {exc}") from None
    try:
        if args.fd is not None:
            sock = socket.socket(fileno=args.fd)
        else:
            try:
                sock = bind_socket(args.host, args.port)
            except OSError as exc:
                raise CliError(listen_error(args.host, args.port, exc)) from None
        limits = limits_from_cli(args)
        server = Server(
            uvicorn_config(app, graceful_timeout=10, limits=limits), handle_signals=True
        )
        host = f"[{args.host}]" if ":" in args.host else args.host
        log.info(
            "serving %s (actors: %s) on http://%s:%d; data in %s; speedups %s",
            path,
            ", ".join(registry.actors) or "none",
            host,
            sock.getsockname()[1],
            os.path.abspath(args.data),
            "on" if rivetkit.SPEEDUPS else "off",
        )
        log.info(
            "inspector: /gateway/ACTOR_ID/inspector/* needs the actor's token; print it with "
            "`rivetkit inspect token ACTOR_ID --data %s`",
            args.data,
        )
        try:
            await server.serve(sockets=[sock])
        finally:
            sock.close()
        log.info("stopping: actors go to sleep and their state is saved")
    finally:
        started = time.monotonic()
        await app.shutdown()
    log.info("stopped in %.2f s", time.monotonic() - started)
    lost = app.runtime.failed_final_saves
    if lost:
        log.error(
            "%d actor(s) could not save their state before stopping: their unsaved changes "
            "are lost (see the errors above)",
            lost,
        )
        return 1
    return 0


async def _serve_engine(args: argparse.Namespace, registry: Any, path: Path) -> int:
    from rivetkit.drivers.engine.serve import EngineModeError, serve_engine_mode

    try:
        return await serve_engine_mode(
            registry,
            target=str(path),
            engine_url=args.engine,
            spawn=args.engine_spawn,
            namespace=args.namespace,
            pool=args.pool,
            token=args.token or os.environ.get("RIVET_TOKEN") or None,
            host=args.host,
            port=args.port,
            data_dir=args.data,
        )
    except EngineModeError as exc:
        raise CliError(str(exc)) from None


def _run(coro: Any) -> int:
    if sys.platform != "win32":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            result: int = uvloop.run(coro)
            return result
    status: int = asyncio.run(coro)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rivetkit`` command; return its exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        print(_version_line())
        return 0
    if args.command == "inspect":
        if args.inspect_command != "token":
            print(
                "rivetkit: error: name the tool: rivetkit inspect token ACTOR_ID [--data DIR]",
                file=sys.stderr,
            )
            return 2
        try:
            return _inspect_token(args)
        except CliError as exc:
            print(f"rivetkit: error: {exc}", file=sys.stderr)
            return exc.status
    if args.command != "serve":
        parser.print_help()
        return 2
    try:
        if args.port is not None and not 0 <= args.port <= 65535:
            raise CliError(f"invalid --port {args.port}: give a port from 0 to 65535", 2)
        configure_logging(args.log_level, args.log_format, access_log=args.access_log)
        if args.reload:
            from rivetkit.reload import supervise

            status: int = supervise(args, list(argv if argv is not None else sys.argv[1:]))
            return status
        from rivetkit.inspector.token import warn_test_token

        warn_test_token()
        registry, path = load_registry(args.target, log_level=args.log_level)
        if args.engine is not None or args.engine_spawn:
            return _run(_serve_engine(args, registry, path))
        if args.port is None:
            args.port = DEFAULT_PORT
        return _run(_serve(args, registry, path))
    except CliError as exc:
        print(f"rivetkit: error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug of ours or an unforeseen failure: one line still
        if want_traceback(args.log_level):
            raise
        print(
            f"rivetkit: error: {type(exc).__name__}: {exc} (full traceback: RIVETKIT_TRACEBACK=1)",
            file=sys.stderr,
        )
        return 1


def listen_error(host: str, port: int, exc: OSError) -> str:
    """The one-line error for a port that cannot be listened on."""
    import errno

    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        fix = "another process listens there; stop it, or choose --port (0: any free port)"
    elif exc.errno == errno.EACCES:
        fix = "ports below 1024 need privileges; choose --port 1024 or above"
    elif exc.errno == errno.EADDRNOTAVAIL:
        fix = "this machine has no such address; use --host 127.0.0.1 or 0.0.0.0"
    else:
        fix = "check --host and --port"
    return f"cannot listen on {host}:{port}: {reason}; {fix}"


def entry_point() -> None:
    """``console_scripts`` entry point."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()
