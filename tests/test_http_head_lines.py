"""``http_fastpath._head_lines`` writes a header list's lines as uvicorn would, or refuses
(None) where uvicorn would raise or frame the response itself: checked against uvicorn's
own rules, header by header, over valid, invalid, upper-case and framing headers, with the
cache of names found fine before (a first call and a repeated one give the same)."""

from __future__ import annotations

import itertools

import pytest

from rivetkit.dispatch.http import OnceHeaders
from rivetkit.server import http_fastpath

pytest.importorskip("httptools")
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
)


def _reference(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """uvicorn's checks, one header at a time (the code before names were cached)."""
    parts: list[bytes] = []
    for name, value in headers:
        if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
            return None
        name = name.lower()
        if name in (b"content-length", b"transfer-encoding", b"connection"):
            return None
        parts.extend((name, b": ", value, b"\r\n"))
    return b"".join(parts)


_PAIRS = [
    (b"content-type", b"application/json"),
    (b"x-rivet-actor", b"abc123"),
    (b"X-Upper", b"v"),
    (b"x-tab", b"a\tb"),
    (b"x-empty", b""),
    (b"bad name", b"v"),
    (b"bad:name", b"v"),
    (b"x-ctl", b"a\x01b"),
    (b"x-nl", b"a\r\nb"),
    (b"x-del", b"a\x7f"),
    (b"Content-Length", b"3"),
    (b"connection", b"close"),
    (b"transfer-encoding", b"chunked"),
    (b"x-latin", b"caf\xe9"),
]


@pytest.mark.parametrize("size", [0, 1, 2, 3])
def test_head_lines_match_uvicorns_rules(size: int) -> None:
    for combo in itertools.product(_PAIRS, repeat=size):
        headers = list(combo)
        expected = _reference(headers)
        for _ in range(2):  # names cached after the first pass
            http_fastpath._heads.clear()
            assert http_fastpath._head_lines(headers) == expected, headers
            assert http_fastpath._head_lines(OnceHeaders(headers)) == expected, headers


def test_head_lines_cache_only_lower_case_valid_names() -> None:
    http_fastpath._good_names.clear()
    http_fastpath._head_lines(OnceHeaders(_PAIRS))
    http_fastpath._head_lines(OnceHeaders([(b"X-Upper", b"v"), (b"x-fine", b"v")]))
    fine = {b"content-type", b"x-rivet-actor", b"x-tab", b"x-empty", b"x-fine"}
    assert http_fastpath._good_names <= fine
    assert b"x-fine" in http_fastpath._good_names


def test_head_lines_of_a_bytearray_name() -> None:
    headers = [(bytearray(b"x-raw"), b"v"), (b"x-raw", bytearray(b"w"))]
    assert http_fastpath._head_lines(OnceHeaders(headers)) == b"x-raw: v\r\nx-raw: w\r\n"
