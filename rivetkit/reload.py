"""``rivetkit serve --reload``: a supervisor that restarts the server when the code changes.

The supervisor binds the listening socket once and starts the server as a child process
(``python -m rivetkit serve ...`` with the same options), handing it the socket, so the port
never changes and a client connecting during a restart waits in the backlog instead of being
refused. It watches the app's folder (or each ``--reload-dir``) for changes to ``*.py`` files
(watchfiles; ``__pycache__``, ``.git``, ``.venv``, ``venv``, ``node_modules``, tool caches
and ``.rivetkit`` are ignored). On a change it:

1. compiles the changed files; a syntax error is reported in one line and the running server
   is left alone until the next change;
2. stops the child gracefully (SIGTERM: connections close, every actor sleeps and its state
   is saved, as on any shutdown) and starts a new one.

A child that exits by itself (an error while importing the app, say) is reported, and the
supervisor waits for the next change. SIGINT or SIGTERM stops the child, then the supervisor.
Clients reconnect by themselves: the Python and TypeScript clients retry and reopen their
connections.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rivetkit.cli_target import CliError, split_target

__all__ = ["child_argv", "supervise", "syntax_errors", "watched_dirs"]

logger = logging.getLogger("rivetkit.reload")

#: How long a child may take to stop gracefully before it is killed (seconds).
STOP_TIMEOUT = 30.0


def watched_dirs(target: str, reload_dirs: Sequence[str] | None) -> list[Path]:
    """The folders to watch: ``reload_dirs``, else the app file's folder (else the current
    directory, for a module target).

    :raises CliError: when a folder does not exist
    """
    if reload_dirs:
        dirs = [Path(d) for d in reload_dirs]
    else:
        source, _ = split_target(target)
        path = Path(source)
        dirs = [path.resolve().parent if path.is_file() else Path.cwd()]
    for folder in dirs:
        if not folder.is_dir():
            raise CliError(f"--reload-dir {folder}: no such folder", 2)
    return [folder.resolve() for folder in dirs]


def child_argv(argv: Sequence[str], fd: int | None) -> list[str]:
    """The child's command line: ``argv`` without the reload options, plus ``--fd``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--reload":
            continue
        if arg == "--reload-dir":
            skip = True
            continue
        if arg.startswith("--reload-dir="):
            continue
        out.append(arg)
    if fd is not None:
        out += ["--fd", str(fd)]
    return [sys.executable, "-m", "rivetkit", *out]


def syntax_errors(paths: Iterable[Path]) -> list[str]:
    """``file:line: SyntaxError: message`` for each of ``paths`` that does not compile."""
    errors = []
    for path in paths:
        if path.suffix != ".py" or not path.is_file():
            continue
        try:
            compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
        except SyntaxError as exc:
            errors.append(f"{_shown(path)}:{exc.lineno}: SyntaxError: {exc.msg}")
        except (ValueError, OSError) as exc:
            errors.append(f"{_shown(path)}: {exc}")
    return errors


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


class _Child:
    """The server process of the moment."""

    def __init__(self, argv: list[str], fd: int | None) -> None:
        self.argv = argv
        self.fd = fd
        self.proc: subprocess.Popen[bytes] | None = None
        self.reported = False

    def start(self) -> None:
        pass_fds = (self.fd,) if self.fd is not None else ()
        self.proc = subprocess.Popen(self.argv, pass_fds=pass_fds)
        self.reported = False

    def check_exited(self) -> None:
        proc = self.proc
        if proc is None or self.reported or proc.poll() is None:
            return
        self.reported = True
        logger.error(
            "the server exited (status %d); waiting for a change to restart it", proc.returncode
        )

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            logger.error("the server did not stop within %g s; killing it", STOP_TIMEOUT)
            proc.kill()
            proc.wait()


def _app_filter() -> Any:
    """watchfiles' filter for ``*.py`` files, also ignoring ``venv``, ``site-packages`` and
    the default data directory."""
    import watchfiles

    class AppFilter(watchfiles.PythonFilter):
        ignore_dirs = (
            *watchfiles.PythonFilter.ignore_dirs,
            "venv",
            "site-packages",
            ".rivetkit",
            ".ruff_cache",
        )

    return AppFilter()


def supervise(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run the server of ``argv`` (the ``serve`` command line) under the reloader until
    SIGINT or SIGTERM; the exit status."""
    import watchfiles

    from rivetkit.cli import DEFAULT_PORT, listen_error
    from rivetkit.server.runner import bind_socket

    if sys.platform == "win32":
        raise CliError("--reload needs a POSIX system (Linux, macOS); run without it", 2)
    dirs = watched_dirs(args.target, args.reload_dirs)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # we say what changed ourselves
    sock = None
    if args.engine is None and not args.engine_spawn:
        port = DEFAULT_PORT if args.port is None else args.port
        try:
            sock = bind_socket(args.host, port)
        except OSError as exc:
            raise CliError(listen_error(args.host, port, exc)) from None
        sock.listen(2048)
    fd = sock.fileno() if sock is not None else None
    child = _Child(child_argv(argv, fd), fd)
    stop = threading.Event()
    previous: dict[int, Any] = {}

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)
    logger.info(
        "reloading: watching *.py in %s; the server restarts on a change",
        ", ".join(_shown(d) for d in dirs),
    )
    try:
        child.start()
        for changes in watchfiles.watch(
            *dirs,
            watch_filter=_app_filter(),
            stop_event=stop,
            yield_on_timeout=True,
            rust_timeout=300,
            raise_interrupt=False,
        ):
            if stop.is_set():
                break
            child.check_exited()
            if not changes:
                continue
            changed = sorted({Path(path) for _, path in changes})
            errors = syntax_errors(changed)
            if errors:
                logger.error(
                    "%s; the server keeps running the previous code until the next change",
                    errors[0],
                )
                continue
            logger.info(
                "%s changed; restarting the server", ", ".join(_shown(p) for p in changed[:3])
            )
            child.stop()
            child.start()
    finally:
        child.stop()
        if sock is not None:
            sock.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
