"""Pure-Python twin of the state codec (compiled twin: ``rivetkit._speedups._state_codec``).

:func:`encode_state` is :func:`rivetkit.protocol.values.cbor_dumps` (CBOR of the JSON-compat
form), the bytes of an actor's state snapshot; the compiled twin walks plain dicts, lists,
strings and numbers in C and hands every other value to the JSON-compat layer of
:mod:`rivetkit.protocol.values`, so both give the same bytes and the same errors.
"""

from __future__ import annotations

from typing import Any

from rivetkit.protocol import values as _values
from rivetkit.protocol.values import cbor_dumps

__all__ = ["encode_json_compat", "encode_state"]


def encode_json_compat(value: Any) -> Any:
    """The JSON-compat form of ``value`` (:func:`rivetkit.protocol.values.encode_json_compat`)."""
    return _values.encode_json_compat(value)


def encode_state(value: Any) -> bytes:
    """CBOR of the JSON-compat form of ``value``; raises EncodeError as ``cbor_dumps`` does."""
    return cbor_dumps(value)
