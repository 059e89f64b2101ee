"""The gateway's URL forms (client protocol §1b): which actor a ``/gateway/...`` URL names.

* Direct: ``/gateway/{actor_id}[@token]/rest``.
* Query: ``/gateway/{name}/rest?rvt-namespace=...&rvt-method=get|getOrCreate&...``; every
  ``rvt-*`` parameter is removed before the actor sees the query. Unknown ``rvt-*`` names,
  repeated ones (``rvt-pool`` is an alias of ``rvt-runner``), a missing or unknown method and
  undecodable input are ``actor/invalid_request`` (400).

``rvt-key`` is form-decoded, then split on ``,`` with no escaping (as the engine does; the
client joins the key's parts with ``,`` and escapes nothing); absent or empty means ``[]``.
``rvt-input`` is base64url (padding optional) of the CBOR input.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final, NamedTuple
from urllib.parse import unquote, unquote_plus

from rivetkit.errors import RivetError
from rivetkit.protocol.values import cbor_loads_raw

__all__ = [
    "MAX_INPUT_SIZE",
    "QueryTarget",
    "check_key",
    "decode_input",
    "invalid_request",
    "parse_direct",
    "parse_query",
    "split_path",
]

#: Largest create input (CBOR bytes), as the engine enforces.
MAX_INPUT_SIZE: Final = 4 * 1024 * 1024
#: Limits of an actor key (engine): per segment and in total, in UTF-8 bytes.
MAX_KEY_SEGMENT: Final = 128
MAX_KEY_TOTAL: Final = 1024

_KNOWN: Final = frozenset(
    {
        "rvt-namespace",
        "rvt-method",
        "rvt-runner",
        "rvt-key",
        "rvt-input",
        "rvt-region",
        "rvt-crash-policy",
        "rvt-token",
        "rvt-skip-ready-wait",
    }
)
_METHODS: Final = frozenset({"get", "getOrCreate"})
_CRASH_POLICIES: Final = frozenset({"sleep", "restart", "destroy"})


def split_path(path: str) -> tuple[str, str]:
    """``(segment, rest)`` of ``/gateway/{segment}{rest}`` (rest defaults to ``/``)."""
    tail = path[9:]
    cut = tail.find("/")
    if cut < 0:
        return tail, "/"
    return tail[:cut], tail[cut:]


def invalid_request(message: str, metadata: object = None) -> RivetError:
    """``actor/invalid_request`` (400)."""
    return RivetError("actor", "invalid_request", message, metadata=metadata)


class QueryTarget(NamedTuple):
    """An actor named by the query form."""

    name: str
    key: list[str]
    #: ``get`` or ``getOrCreate``.
    method: str
    #: CBOR bytes of the create input (getOrCreate only), or None.
    input: bytes | None
    namespace: str
    token: str | None


def _decode_component(text: str, what: str) -> str:
    if "%" not in text and "+" not in text:
        return text  # what unquote_plus gives (the common case: no call)
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError:
        raise invalid_request(f"{what} is not valid UTF-8") from None


def split_query(query_string: str) -> tuple[dict[str, str], str]:
    """The ``rvt-*`` parameters (decoded) and the rest of the query (as it was sent)."""
    params: dict[str, str] = {}
    rest: list[str] = []
    # Nothing to decode anywhere (the common case): each name and value is what
    # _decode_component gives, without a call per piece.
    plain = "%" not in query_string and "+" not in query_string
    for piece in query_string.split("&"):
        if not piece:
            continue
        raw_name, _, raw_value = piece.partition("=")
        name = raw_name if plain else _decode_component(raw_name, "a query parameter name")
        if not name.startswith("rvt-"):
            rest.append(piece)
            continue
        if name == "rvt-pool":
            name = "rvt-runner"
        if name not in _KNOWN:
            raise invalid_request(
                f"unknown gateway parameter {name[:60]!r}", metadata={"parameter": name[:60]}
            )
        if name in params:
            raise invalid_request(
                f"gateway parameter {name!r} is given twice", metadata={"parameter": name}
            )
        if not plain and ("%" in raw_value or "+" in raw_value):
            raw_value = _decode_component(raw_value, f"gateway parameter {name!r}")
        params[name] = raw_value
    return params, "&".join(rest)


def check_key(key: list[str]) -> list[str]:
    """Check the engine's key limits; ``actor/key_too_large`` beyond them."""
    total = 0
    for segment in key:
        size = len(segment) if segment.isascii() else len(segment.encode("utf-8", "surrogatepass"))
        if size > MAX_KEY_SEGMENT:
            raise RivetError(
                "actor",
                "key_too_large",
                f"a key segment is {size} bytes; the limit is {MAX_KEY_SEGMENT}",
            )
        total += size
    if total > MAX_KEY_TOTAL:
        raise RivetError(
            "actor", "key_too_large", f"the key is {total} bytes; the limit is {MAX_KEY_TOTAL}"
        )
    return key


def decode_input(text: str, *, urlsafe: bool, what: str) -> bytes:
    """The CBOR bytes of a base64 input (checked to be one CBOR value)."""
    if len(text) > MAX_INPUT_SIZE * 4 // 3 + 8:
        raise RivetError("actor", "input_too_large", f"the input exceeds {MAX_INPUT_SIZE} bytes")
    padded = text.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    try:
        if urlsafe:
            data = base64.b64decode(padded.translate(_URLSAFE), validate=True)
        else:
            data = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request(f"{what} is not valid base64") from None
    if len(data) > MAX_INPUT_SIZE:
        raise RivetError("actor", "input_too_large", f"the input exceeds {MAX_INPUT_SIZE} bytes")
    try:
        cbor_loads_raw(data, error_code="invalid_http_request")
    except RivetError:
        raise invalid_request(f"{what} is not valid CBOR") from None
    return data


_URLSAFE: Final = str.maketrans("-_", "+/")


def parse_query(segment: str, params: dict[str, str]) -> QueryTarget:
    """The actor named by the query form, from the URL segment and the ``rvt-*`` params."""
    if "%" in segment:
        try:
            name = unquote(segment, errors="strict")
        except UnicodeDecodeError:
            raise invalid_request("the actor name is not valid UTF-8") from None
    else:
        name = segment  # what unquote gives (no call)
    method = params.get("rvt-method")
    if method is None:
        raise invalid_request("the gateway parameter rvt-method is missing")
    if method not in _METHODS:
        raise invalid_request(
            f"unknown rvt-method {method[:40]!r}; expected get or getOrCreate",
            metadata={"method": method[:40]},
        )
    policy = params.get("rvt-crash-policy")
    if policy is not None and policy not in _CRASH_POLICIES:
        raise invalid_request(f"unknown rvt-crash-policy {policy[:40]!r}")
    raw_key = params.get("rvt-key")
    if not raw_key:
        key = []
    elif len(raw_key) <= MAX_KEY_SEGMENT and raw_key.isascii():
        key = raw_key.split(",")  # within check_key's limits: no segment, nor all, is longer
    else:
        key = check_key(raw_key.split(","))
    input_text = params.get("rvt-input")
    input: bytes | None = None
    if input_text is not None and method == "getOrCreate":
        input = decode_input(input_text, urlsafe=True, what="rvt-input")
    # QueryTarget(...) without its __new__'s Python frame (the same tuple).
    namespace = params.get("rvt-namespace") or "default"
    return _new_tuple(QueryTarget, (name, key, method, input, namespace, params.get("rvt-token")))


_new_tuple: Final = tuple.__new__


def parse_direct(segment: str) -> tuple[str, str | None]:
    """``(actor_id, token)`` of a direct ``/gateway/{actor_id}[@token]`` segment."""
    try:
        text = unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise invalid_request("the actor id is not valid UTF-8") from None
    actor_id, sep, token = text.partition("@")
    if not actor_id or len(actor_id) > 256:
        raise invalid_request("the gateway URL names no valid actor id")
    return actor_id, (token if sep else None)
