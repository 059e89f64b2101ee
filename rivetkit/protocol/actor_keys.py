"""RivetKit's serialized actor key, the string form of a key in the manager API.

An actor key is a list of string segments. RivetKit (``actor/keys.ts``) writes it as one
string: ``[]`` is ``"/"``; in each segment ``\\`` becomes ``\\\\`` and ``/`` becomes ``\\/``;
an empty segment is ``\\0``; segments are joined with ``/``. So ``["k", "a,b"]`` is
``"k/a,b"`` and ``["a/b", ""]`` is ``"a\\/b/\\0"``. The embedded driver stores this form to
enforce one live actor per ``(name, key)``; the server parses it from ``?key=`` and request
bodies; the client writes it in the URLs it builds. It is a wire format with no I/O, so it
lives in the protocol layer, which the client and the drivers may both use.
"""

from __future__ import annotations

from collections.abc import Sequence

#: The serialized form of the empty key ``[]``.
EMPTY_KEY = "/"
#: The separator between segments.
KEY_SEPARATOR = "/"


def serialize_key(key: Sequence[str]) -> str:
    """The serialized form of ``key`` (RivetKit's ``serializeActorKey``)."""
    if key.__class__ is list and len(key) == 1:  # the common key: one plain segment
        part = key[0]
        if part.__class__ is str and part and "\\" not in part and "/" not in part:
            return part  # (what the loop below gives for it)
    if isinstance(key, str):
        raise TypeError("an actor key is a sequence of strings, not a string")
    if not key:
        return EMPTY_KEY
    parts = []
    for part in key:
        if not isinstance(part, str):
            raise TypeError(f"actor key segments must be str, not {type(part).__name__}")
        if part == "":
            parts.append("\\0")
        else:
            parts.append(part.replace("\\", "\\\\").replace("/", "\\/"))
    return KEY_SEPARATOR.join(parts)


def deserialize_key(key_str: str | None) -> list[str]:
    """The key serialized as ``key_str`` (RivetKit's ``deserializeActorKey``).

    Accepts whatever RivetKit accepts, with its leniencies: ``None``, ``""`` and ``"/"`` are
    ``[]``; a trailing lone ``\\`` is a literal backslash; ``\\x`` for any other ``x`` is
    ``x``.
    """
    if key_str is None or key_str == EMPTY_KEY:
        return []
    parts: list[str] = []
    current: list[str] = []
    escaping = False
    empty_marker = False
    for char in key_str:
        if escaping:
            if char == "0":
                empty_marker = True
            else:
                current.append(char)
            escaping = False
        elif char == "\\":
            escaping = True
        elif char == KEY_SEPARATOR:
            parts.append("" if empty_marker else "".join(current))
            empty_marker = False
            current = []
        else:
            current.append(char)
    if escaping:
        parts.append("".join(current) + "\\")
    elif empty_marker:
        parts.append("")
    elif current or parts:
        parts.append("".join(current))
    return parts


def check_name_key(name: str, key: Sequence[str]) -> list[str]:
    """Check an actor name and key given to a driver; return the key as a list of segments."""
    if not isinstance(name, str):
        raise TypeError(f"actor name must be str, not {type(name).__name__}")
    if isinstance(key, str):
        raise TypeError("an actor key is a sequence of strings, not a string")
    segments = list(key)
    for segment in segments:
        if not isinstance(segment, str):
            raise TypeError(f"actor key segments must be str, not {type(segment).__name__}")
    return segments
