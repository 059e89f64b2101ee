"""Run the documentation's Python examples as tests (sybil).

Every ```` ```python ```` block of ``docs/**/*.md`` (and, through the root ``conftest.py``, of
``README.md``) is one test, run in page order. The blocks of a page share one namespace: a
real module registered in ``sys.modules`` for the page, so dataclasses, ``TypedDict`` and
annotation lookups behave as in a user's file.

- A block with top-level ``await`` runs on the page's event loop
  (``loop.run_until_complete``); the loop is not running between blocks.
- A block without top-level ``await`` runs plainly, with no event loop running in the thread,
  so ``asyncio.run(main())`` works in it.
- ``<!-- invisible-code-block: python ... -->`` runs without being shown;
  ``<!-- skip: next -->`` skips the next block (say why in an HTML comment).
- ``await docs_serve(registry, **options)`` (in every page's namespace) starts the embedded
  server (:func:`rivetkit.server.serve_in_background`, options passed on) on a free
  127.0.0.1 port, in a background thread with its own event loop and a temporary data
  directory; it sets ``RIVET_ENDPOINT`` to the server's URL for the rest of the page (and
  hides ``RIVET_ENGINE``) and returns the URL. At the end of the page the server stops
  (actors sleep, the data directory is removed) and the environment is restored.

``docs/__init__.py`` makes this module ``docs.conftest`` rather than a second top-level
``conftest`` (the tests import names from ``tests/conftest.py`` as ``conftest``).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import os
import re
import sys
import threading
import types
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, SkipParser

#: The namespace key holding a page's :class:`Page`.
PAGE_KEY = "__docs_page__"
#: How long a stopping server may take before the page's teardown gives up on it.
STOP_TIMEOUT = 30.0
#: Environment variables a page's server replaces (the client reads RIVET_ENGINE first).
ENDPOINT_VARS = ("RIVET_ENDPOINT", "RIVET_ENGINE")


class BackgroundServer:
    """The embedded server on its own thread and event loop, for one page."""

    def __init__(self, registry: Any, options: dict[str, Any]) -> None:
        self._registry = registry
        self._options = options
        self._ready: Future[str] = Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="docs-server", daemon=True)

    def start(self) -> str:
        """Start the server; block until it listens; return its URL."""
        self._thread.start()
        return self._ready.result(timeout=60)

    def stop(self) -> None:
        """Stop the server (actors sleep, the temporary data directory is removed)."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STOP_TIMEOUT)
        if self._thread.is_alive():
            raise RuntimeError(f"the docs server did not stop within {STOP_TIMEOUT} s")

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # startup failures reach the page
            if not self._ready.done():
                self._ready.set_exception(error)

    async def _serve(self) -> None:
        from rivetkit.server import serve_in_background

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve_in_background(self._registry, **self._options) as url:
            self._ready.set_result(str(url))
            await self._stop.wait()


class Page:
    """One page's run: its module namespace, event loop, servers and saved environment."""

    def __init__(self, path: Path) -> None:
        stem = re.sub(r"\W", "_", path.stem)
        self.module = types.ModuleType(f"docs_page_{stem}_{id(self):x}")
        self.module.__file__ = str(path)
        sys.modules[self.module.__name__] = self.module
        self.loop: asyncio.AbstractEventLoop | None = None
        self.servers: list[BackgroundServer] = []
        self.saved_env: dict[str, str | None] | None = None
        self.module.__dict__["docs_serve"] = self.serve

    def event_loop(self) -> asyncio.AbstractEventLoop:
        """The page's event loop (created on the first block with top-level ``await``)."""
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        return self.loop

    async def serve(self, registry: Any, **options: Any) -> str:
        """Start the embedded server for ``registry``; point ``RIVET_ENDPOINT`` at it."""
        server = BackgroundServer(registry, options)
        url = server.start()
        self.servers.append(server)
        if self.saved_env is None:
            self.saved_env = {name: os.environ.get(name) for name in ENDPOINT_VARS}
        os.environ.pop("RIVET_ENGINE", None)
        os.environ["RIVET_ENDPOINT"] = url
        return url

    def close(self) -> None:
        """Cancel the page's tasks, stop its servers, restore the environment."""
        errors: list[BaseException] = []
        if self.loop is not None and not self.loop.is_closed():
            try:
                _cancel_all(self.loop)
            except BaseException as error:
                errors.append(error)
        for server in reversed(self.servers):
            try:
                server.stop()
            except BaseException as error:
                errors.append(error)
        if self.loop is not None and not self.loop.is_closed():
            self.loop.close()
        if self.saved_env is not None:
            for name, value in self.saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        sys.modules.pop(self.module.__name__, None)
        if errors:
            raise errors[0]


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


def _page(example: Example) -> Page:
    page = example.namespace.get(PAGE_KEY)
    if page is None:  # the page's first block
        page = example.namespace[PAGE_KEY] = Page(Path(example.path))
    assert isinstance(page, Page)
    return page


def evaluate_python(example: Example) -> None:
    """Run one block in its page's module; top-level ``await`` on the page's loop."""
    __tracebackhide__ = True
    page = _page(example)
    # Leading newlines so tracebacks show the line of the page itself.
    source = "\n" * (example.line + example.parsed.line_offset) + example.parsed
    code = compile(
        source, example.path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    namespace = page.module.__dict__
    if code.co_flags & inspect.CO_COROUTINE:
        page.event_loop().run_until_complete(eval(code, namespace))
    else:
        exec(code, namespace)


def teardown_page(namespace: dict[str, Any]) -> None:
    """Sybil's per-page teardown: stop what the page started."""
    page = namespace.pop(PAGE_KEY, None)
    if isinstance(page, Page):
        page.close()


def make_sybil(path: Path, patterns: Sequence[str]) -> Sybil:
    """The Sybil collecting ``patterns`` under ``path`` with the conventions above."""
    return Sybil(
        parsers=[CodeBlockParser(language="python", evaluator=evaluate_python), SkipParser()],
        path=str(path),
        patterns=list(patterns),
        teardown=teardown_page,
    )


pytest_collect_file = make_sybil(Path(__file__).parent, ["*.md"]).pytest()
