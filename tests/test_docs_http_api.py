"""The curl examples of the HTTP API reference, run as written against ``rivetkit serve``.

docs/reference/http-api.md (and docs/guides/browsers.md, docs/guides/bank.md) shows ``curl`` commands in ``sh`` blocks, each followed by the
output it prints as ``# ...`` lines. This test serves ``examples/app.py`` with the real
command on a fresh data directory, runs every such command in page order with bash (the
documented endpoint replaced by the server's), and checks the output: the body exactly,
``...`` standing for any text; with ``curl -i`` the status line, the headers shown (others,
such as ``date``, may come too) and the body. Actor ids are opaque: the first time an id
appears in an expected output it stands for whatever id the server printed there, and later
commands that show it are run with the server's id instead. A command followed by no ``#``
line is only checked to succeed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reference" / "http-api.md"
#: Pages whose curl examples run against examples/app.py, with how many must be checked.
PAGES = {
    PAGE: 6,
    ROOT / "docs" / "guides" / "browsers.md": 1,
    ROOT / "docs" / "guides" / "bank.md": 3,
}
APP = ROOT / "examples" / "app.py"
DOC_ENDPOINT = "http://127.0.0.1:6420"
ACTOR_ID = re.compile(r"\b[0-9a-z]{30}\b")

pytestmark = [
    pytest.mark.skipif(
        not PAGE.is_file(), reason="docs/ is not next to the tests (installed-package run)"
    ),
    pytest.mark.skipif(sys.platform == "win32", reason="bash and curl examples"),
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]


class Example(NamedTuple):
    """One documented command and the output lines shown under it."""

    line: int
    command: str
    expected: list[str]


def examples(text: str) -> list[Example]:
    """The ``curl`` commands of the page's ``sh`` blocks, in order, with their outputs."""
    found: list[Example] = []
    for block in re.finditer(r"^```sh\n(.*?)^```", text, re.M | re.S):
        first_line = text.count("\n", 0, block.start()) + 2
        lines = block.group(1).splitlines()
        i = 0
        while i < len(lines):
            start = i
            command = [lines[i]]
            while command[-1].endswith("\\") and i + 1 < len(lines):
                i += 1
                command.append(lines[i])
            i += 1
            expected: list[str] = []
            while i < len(lines) and lines[i].startswith("#"):
                expected.append(lines[i][2:] if lines[i].startswith("# ") else "")
                i += 1
            text_of_command = "\n".join(command)
            if "curl " in text_of_command:
                found.append(Example(first_line + start, text_of_command, expected))
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    """``rivetkit serve examples/app.py`` on a free port and a fresh data directory."""
    port = _free_port()
    data = str(tmp_path / "data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rivetkit", "serve", str(APP), "--port", str(port), "--data", data],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"rivetkit serve exited: {proc.communicate()[1]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("rivetkit serve did not become healthy")
            time.sleep(0.05)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


class Ids:
    """Documented actor ids, bound to the server's ones as they show up."""

    def __init__(self) -> None:
        self.bound: dict[str, str] = {}

    def substitute(self, text: str) -> str:
        return ACTOR_ID.sub(lambda m: self.bound.get(m.group(0), m.group(0)), text)

    def match(self, expected: str, actual: str) -> bool:
        """Whether ``actual`` fits ``expected`` (``...`` = any text); binds new ids."""
        pattern = ""
        new: list[str] = []
        position = 0
        for token in ACTOR_ID.finditer(expected):
            pattern += _literal(expected[position : token.start()])
            documented = token.group(0)
            if documented in self.bound:
                pattern += re.escape(self.bound[documented])
            elif documented in new:
                pattern += f"(?P=id{new.index(documented)})"
            else:
                pattern += f"(?P<id{len(new)}>[0-9a-z]{{30}})"
                new.append(documented)
            position = token.end()
        pattern += _literal(expected[position:])
        found = re.fullmatch(pattern, actual, re.S)
        if found is None:
            return False
        for index, documented in enumerate(new):
            self.bound[documented] = found.group(f"id{index}")
        return True


def _literal(text: str) -> str:
    return ".*?".join(re.escape(part) for part in text.split("..."))


def _check(page: Path, example: Example, output: str, ids: Ids) -> None:
    where = f"{page.name}:{example.line}: {example.command}"
    expected = example.expected
    if not re.search(r"(^|\s)-i(\s|$)", example.command):
        assert ids.match("\n".join(expected), output.rstrip("\n")), (
            f"{where}\nexpected: {expected}\ngot: {output!r}"
        )
        return
    head, _, body = output.replace("\r\n", "\n").partition("\n\n")
    # The page may show the head only (no blank line): then the body is not checked.
    blank = expected.index("") if "" in expected else len(expected)
    shown_head, shown_body = expected[:blank], "\n".join(expected[blank + 1 :])
    status, *headers = head.split("\n")
    assert ids.match(shown_head[0], status), f"{where}\nstatus {status!r}"
    for line in shown_head[1:]:
        name = line.split(":", 1)[0].lower()
        sent = [h for h in headers if h.split(":", 1)[0].lower() == name]
        assert any(ids.match(line, h) for h in sent), f"{where}\nheader {line!r} not in {sent}"
    if blank < len(expected):
        assert ids.match(shown_body, body.rstrip("\n")), f"{where}\nbody {body!r}"


def test_the_page_has_curl_examples() -> None:
    found = examples(PAGE.read_text(encoding="utf-8"))
    assert len(found) >= 8
    assert sum(1 for e in found if e.expected) >= 6


@pytest.mark.parametrize("page", list(PAGES), ids=lambda page: page.name)
def test_curl_examples_print_what_the_page_shows(page: Path, endpoint: str) -> None:
    ids = Ids()
    checked = 0
    for example in examples(page.read_text(encoding="utf-8")):
        if "xxd" in example.command and shutil.which("xxd") is None:
            continue
        command = ids.substitute(example.command.replace(DOC_ENDPOINT, endpoint))
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "LC_ALL": "C"},
        )
        assert result.returncode == 0, f"{example.command}\n{result.stderr}"
        if example.expected:
            _check(page, example, result.stdout, ids)
            checked += 1
    assert checked >= PAGES[page]
