"""Which actor a handle targets: by key (``get``), by key creating it (``get_or_create``),
or by id (``get_for_id``, and ``create`` once the actor exists).

Keys are lists of strings; a plain ``str`` is the one-segment key ``[str]`` and ``None`` is
the empty key ``[]``, as in the TypeScript client.

An input travels as CBOR: ``rvt-input`` is base64url (no padding) of the CBOR, the manager
API's ``input`` is standard base64 of it. The CBOR is written as the TypeScript client's
cbor-x does, without the JSON-compat layer (:func:`rivetkit.protocol.values.cbor_dumps_raw`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from rivetkit.protocol.values import cbor_dumps_raw

__all__ = [
    "DEFAULT_MAX_INPUT_SIZE",
    "ActorQuery",
    "ForIdQuery",
    "GetOrCreateQuery",
    "GetQuery",
    "KeyArg",
    "b64_std",
    "b64url_nopad",
    "encode_input",
    "normalize_key",
]

#: Largest CBOR input a ``get_or_create`` handle carries in its URL (the client's
#: ``maxInputSize``), in bytes.
DEFAULT_MAX_INPUT_SIZE: Final = 4096

#: What the handle factories accept as a key.
KeyArg = str | Sequence[str] | None


def normalize_key(key: KeyArg) -> tuple[str, ...]:
    """The key as a tuple of segments; raises TypeError on anything but str segments."""
    if key is None:
        return ()
    if isinstance(key, str):
        return (key,)
    if isinstance(key, (bytes, bytearray, memoryview)) or not isinstance(key, Sequence):
        raise TypeError(f"an actor key is a str or a sequence of str, not {type(key).__name__}")
    for part in key:
        if not isinstance(part, str):
            raise TypeError(f"actor key segments must be str, not {type(part).__name__}")
    return tuple(key)


def encode_input(value: Any) -> bytes:
    """CBOR of an actor input (raises EncodeError when it is not CBOR-serializable)."""
    return cbor_dumps_raw(value)


def b64url_nopad(data: bytes) -> str:
    """base64url without ``=`` padding (``rvt-input``)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64_std(data: bytes) -> str:
    """Standard base64 with padding (the manager API's ``input``)."""
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class GetQuery:
    """The existing actor ``(name, key)`` (``rvt-method=get``)."""

    name: str
    key: tuple[str, ...]


@dataclass(frozen=True)
class GetOrCreateQuery:
    """The actor ``(name, key)``, created with ``input`` when missing (``getOrCreate``).

    ``input_cbor`` is the encoded input (None without one); ``region`` is the datacenter to
    create it in (``rvt-region``), None for the server's choice.
    """

    name: str
    key: tuple[str, ...]
    input_cbor: bytes | None = None
    region: str | None = None


@dataclass(frozen=True)
class ForIdQuery:
    """The actor with id ``actor_id`` (the direct gateway form)."""

    name: str
    actor_id: str


#: Any of the three targets.
ActorQuery = GetQuery | GetOrCreateQuery | ForIdQuery
