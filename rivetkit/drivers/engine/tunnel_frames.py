"""The tunnel's per-request conversions, done with caches of what repeats.

Every HTTP request through the engine's gateway arrives with the gateway's headers (a
``dict[str, str]``, the same dozen names each time) and is answered with one
``ToRivetTunnelMessage{ResponseStart}`` whose headers are, for actions, the same list for
every answer of an actor (``Dispatcher.success_headers``) plus ``content-length``. So:

* :func:`request_headers` lower-cases and encodes each header name once (a bounded cache);
* :func:`response_frame` encodes the answer's frame directly, the header map's bytes cached
  per distinct header list. It gives exactly the bytes of
  ``TO_RIVET.encode(ToRivetTunnelMessage(MessageId(gateway_id, request_id, 0),
  ToRivetResponseStart(status, headers, body, False)))`` with the headers as
  :func:`response_headers` builds them (tests/test_engine_tunnel_frames.py checks it, over
  both twins of the codec).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from rivetkit.dispatch.http import Headers, OnceHeaders
from rivetkit.protocol.bare_prims import string as _str
from rivetkit.protocol.bare_prims import uint as _uint

__all__ = ["request_headers", "response_frame", "response_headers"]

#: Header names whose value the tunnel's framing sets (never forwarded from a response).
FRAMING: Final = (b"content-length", b"transfer-encoding", b"connection")
#: Distinct entries kept by each cache before it is emptied (names and header lists are a
#: handful in practice; the bound only stops a stream of unusual ones from growing it).
CACHE_LIMIT: Final = 512

_names: dict[str, bytes] = {}
_maps: dict[tuple[tuple[bytes, bytes], ...], tuple[int, bytes]] = {}


def _name(name: str) -> bytes:
    raw = _names.get(name)
    if raw is None:
        raw = name.lower().encode("latin-1", "replace")
        if len(_names) >= CACHE_LIMIT:
            _names.clear()
        _names[name] = raw
    return raw


def request_headers(pairs: dict[str, str]) -> Headers:
    """The gateway's request headers as dispatch's :class:`Headers`: names lower-cased,
    values latin-1 (UTF-8 when a value does not fit latin-1)."""
    raw: list[tuple[bytes, bytes]] = []
    append = raw.append
    for name, value in pairs.items():
        try:
            raw_value = value.encode("latin-1")
        except UnicodeEncodeError:
            raw_value = value.encode("utf-8")
        append((_name(name), raw_value))
    return Headers.from_raw(raw)


def response_headers(raw: Sequence[tuple[bytes, bytes]], body_length: int) -> dict[str, str]:
    """The ``ResponseStart`` headers of a response: framing headers dropped, repeated names
    joined with ``", "``, and ``content-length`` last."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        if raw_name in FRAMING:
            continue
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        previous = headers.get(name)
        headers[name] = value if previous is None else f"{previous}, {value}"
    headers["content-length"] = str(body_length)
    return headers


def _header_map(raw: Sequence[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """(entries, encoded entries) of the headers of ``raw`` but ``content-length``."""
    key = tuple(raw)
    cached = _maps.get(key)
    if cached is None:
        headers = response_headers(raw, 0)
        del headers["content-length"]
        cached = (
            len(headers),
            b"".join(_str(name) + _str(value) for name, value in headers.items()),
        )
        if len(_maps) >= CACHE_LIMIT:
            _maps.clear()
        _maps[key] = cached
    return cached


_CONTENT_LENGTH: Final = _str("content-length")
#: (status, headers) -> the frame's bytes from the message index to ``content-length``'s name.
_heads: dict[tuple[int, tuple[tuple[bytes, bytes], ...]], bytes] = {}
#: BARE ``uint`` of 0..127 (one byte each).
_SMALL: Final = tuple(bytes((n,)) for n in range(128))

#: id of a header list -> (status, a copy of the list, its head): the dispatcher's shared
#: success headers come back as the same list on every answer of an actor.
_by_list: dict[int, tuple[int, list[tuple[bytes, bytes]], bytes]] = {}


def _head(status: int, raw_headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The frame's bytes from the message index to ``content-length``'s name (kept by the
    headers' items, but for a :class:`~rivetkit.dispatch.http.OnceHeaders`)."""
    key = (status, tuple(raw_headers))
    head = _heads.get(key)
    if head is None:
        count, entries = _header_map(raw_headers)
        head = b"".join(
            (
                b"\x00\x00\x00",  # message index 0 (u16), kind ResponseStart
                status.to_bytes(2, "little"),
                _uint(count + 1),
                entries,
                _CONTENT_LENGTH,
            )
        )
        if raw_headers.__class__ is not OnceHeaders:  # an actor's first answer: not kept
            if len(_heads) >= CACHE_LIMIT:
                _heads.clear()
            _heads[key] = head
    return head


def response_frame(
    gateway_id: bytes,
    request_id: bytes,
    status: int,
    raw_headers: Sequence[tuple[bytes, bytes]],
    body: bytes,
) -> bytes:
    """The encoded ``ToRivet`` frame answering a request in one ``ResponseStart``."""
    if len(gateway_id) != 4 or len(request_id) != 4 or not 0 <= status <= 0xFFFF:
        raise ValueError("a message id is 4 + 4 bytes and a status a u16")
    # A header list seen last time (by id, its contents checked: a new list at a freed
    # list's address gets its own head when they differ), else by (status, contents).
    seen = _by_list.get(id(raw_headers))
    if seen is not None and seen[0] == status and seen[1] == raw_headers:
        head = seen[2]
    else:
        head = _head(status, raw_headers)
        if type(raw_headers) is list:
            if len(_by_list) >= CACHE_LIMIT:
                _by_list.clear()
            _by_list[id(raw_headers)] = (status, list(raw_headers), head)
    size = len(body)
    length = b"%d" % size
    return b"".join(
        (
            b"\x06",  # ToRivet: ToRivetTunnelMessage
            gateway_id,
            request_id,
            head,
            _SMALL[len(length)],
            length,
            b"\x01",  # body present
            _SMALL[size] if size < 128 else _uint(size),
            body,
            b"\x00",  # stream: false
        )
    )
