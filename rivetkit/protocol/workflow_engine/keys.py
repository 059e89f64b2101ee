"""workflow-engine keys: FoundationDB tuple encoding, locations and the name registry.

Every key the engine stores is a packed tuple (spec §2.1):

=================== ================================ ==========================================
key                 tuple                            value
=================== ================================ ==========================================
name ``i``          ``(1, i)``                       the name, raw UTF-8
history entry       ``(2, *location)``               vbare v1 ``Entry``
workflow field      ``(3, field)`` (:class:`Field`)  state text, CBOR output/error/input
entry metadata      ``(4, entry_id)``                vbare v1 ``EntryMetadata``
(reserved)          ``(5, ...)``                     trace context; readers ignore it
=================== ================================ ==========================================

A location's name index packs as an integer and a loop iteration marker as the nested tuple
``(loop, iteration)``. Inside an actor every key is stored after :data:`ACTOR_PREFIX`
(``[6, 1]``, spec §2.7).

Only the tuple items the engine writes are supported: integers ``>= 0`` (``0x14``-``0x1c``),
strings (``0x02``) and nested tuples (``0x05``); :func:`unpack` also reads byte strings
(``0x01``), ``null`` (``0x00``) and negative integers (``0x0c``-``0x13``) so that a reader can
skip a foreign key instead of failing on it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import NamedTuple, TypeAlias

from rivetkit.errors import ProtocolError
from rivetkit.protocol.workflow_engine.types import Location, LoopIterationMarker, NameIndex

__all__ = [
    "ACTOR_PREFIX",
    "ENTRY_METADATA_PREFIX",
    "ERROR_CODE",
    "HISTORY_PREFIX",
    "NAMES_PREFIX",
    "WORKFLOW_PREFIX",
    "EngineKey",
    "Field",
    "HistoryKey",
    "KeyPrefix",
    "MetadataKey",
    "NameKey",
    "NameRegistry",
    "OtherKey",
    "TupleItem",
    "WorkflowKey",
    "actor_key",
    "append_loop_iteration",
    "append_name",
    "engine_key",
    "history_key",
    "history_prefix",
    "is_location_prefix",
    "is_scope_key",
    "location_from_tuple",
    "location_key",
    "location_to_tuple",
    "loop_iteration_range",
    "metadata_key",
    "name_key",
    "pack",
    "parse_key",
    "prefix_end",
    "unpack",
    "workflow_key",
]

ERROR_CODE = "invalid_workflow_data"

#: A tuple item: an int, a str, bytes, None, or a nested tuple of items.
TupleItem: TypeAlias = "int | str | bytes | tuple[TupleItem, ...] | None"


class KeyPrefix(enum.IntEnum):
    """The first item of every engine key (``KEY_PREFIX``)."""

    NAMES = 1
    HISTORY = 2
    WORKFLOW = 3
    ENTRY_METADATA = 4
    #: Reserved for RivetKit's workflow trace context; never written by 2.3.19.
    TRACE = 5


class Field(enum.IntEnum):
    """The second item of a workflow key ``(3, field)`` (``WORKFLOW_FIELD``)."""

    STATE = 1
    OUTPUT = 2
    ERROR = 3
    INPUT = 4


# MARK: Tuple encoding

_NULL = 0x00
_BYTES = 0x01
_STRING = 0x02
_NESTED = 0x05
_INT_ZERO = 0x14


def _escaped(raw: bytes) -> bytes:
    return raw.replace(b"\x00", b"\x00\xff") + b"\x00"


def _pack_item(item: TupleItem, out: bytearray, nested: bool) -> None:
    if isinstance(item, bool):
        raise TypeError("booleans are not workflow key items")
    if isinstance(item, int):
        if item == 0:
            out.append(_INT_ZERO)
            return
        size = (abs(item).bit_length() + 7) // 8
        if size > 8:
            raise ValueError(f"integer key item out of range: {item}")
        if item > 0:
            out.append(_INT_ZERO + size)
            out += item.to_bytes(size, "big")
        else:
            out.append(_INT_ZERO - size)
            out += ((1 << (8 * size)) - 1 + item).to_bytes(size, "big")
    elif isinstance(item, str):
        out.append(_STRING)
        out += _escaped(item.encode())
    elif isinstance(item, (bytes, bytearray)):
        out.append(_BYTES)
        out += _escaped(bytes(item))
    elif item is None:
        out += b"\x00\xff" if nested else b"\x00"
    elif isinstance(item, tuple):
        out.append(_NESTED)
        for inner in item:
            _pack_item(inner, out, True)
        out.append(0x00)
    else:
        raise TypeError(f"unsupported key item: {type(item).__name__}")


def pack(items: Iterable[TupleItem]) -> bytes:
    """Pack a tuple of items (fdb-tuple's ``pack`` for the items the engine uses)."""
    out = bytearray()
    for item in items:
        _pack_item(item, out, False)
    return bytes(out)


def _read_escaped(data: bytes, pos: int) -> tuple[bytes, int]:
    out = bytearray()
    while True:
        end = data.find(b"\x00", pos)
        if end < 0:
            raise ProtocolError("unterminated string in workflow key", code=ERROR_CODE)
        out += data[pos:end]
        if end + 1 < len(data) and data[end + 1] == 0xFF:
            out.append(0)
            pos = end + 2
            continue
        return bytes(out), end + 1


def _unpack_item(data: bytes, pos: int, nested: bool) -> tuple[TupleItem, int]:
    code = data[pos]
    pos += 1
    if code == _INT_ZERO:
        return 0, pos
    if _INT_ZERO < code <= _INT_ZERO + 8 or _INT_ZERO - 8 <= code < _INT_ZERO:
        size = abs(code - _INT_ZERO)
        if pos + size > len(data):
            raise ProtocolError("truncated integer in workflow key", code=ERROR_CODE)
        raw = int.from_bytes(data[pos : pos + size], "big")
        value = raw if code > _INT_ZERO else raw - ((1 << (8 * size)) - 1)
        return value, pos + size
    if code == _STRING:
        raw_text, pos = _read_escaped(data, pos)
        try:
            return raw_text.decode(), pos
        except UnicodeDecodeError:
            raise ProtocolError("invalid UTF-8 in workflow key", code=ERROR_CODE) from None
    if code == _BYTES:
        return _read_escaped(data, pos)
    if code == _NULL:
        if nested:
            if pos >= len(data) or data[pos] != 0xFF:
                raise ProtocolError("bad null in nested workflow key tuple", code=ERROR_CODE)
            pos += 1
        return None, pos
    if code == _NESTED:
        items: list[TupleItem] = []
        while True:
            if pos >= len(data):
                raise ProtocolError("unterminated nested tuple in workflow key", code=ERROR_CODE)
            if data[pos] == 0x00 and not (pos + 1 < len(data) and data[pos + 1] == 0xFF):
                return tuple(items), pos + 1
            item, pos = _unpack_item(data, pos, True)
            items.append(item)
    raise ProtocolError(
        f"unsupported tuple type code 0x{code:02x} in workflow key", code=ERROR_CODE
    )


def unpack(data: bytes) -> tuple[TupleItem, ...]:
    """Unpack a packed tuple; raises :class:`~rivetkit.errors.ProtocolError` on bad bytes."""
    items: list[TupleItem] = []
    pos = 0
    while pos < len(data):
        item, pos = _unpack_item(data, pos, False)
        items.append(item)
    return tuple(items)


# MARK: Locations


def location_to_tuple(location: Location) -> tuple[TupleItem, ...]:
    """The tuple items of a location: ints for names, ``(loop, iteration)`` for markers."""
    return tuple(
        seg.value if isinstance(seg, NameIndex) else (seg.loop, seg.iteration) for seg in location
    )


def location_from_tuple(items: Sequence[TupleItem]) -> Location:
    """The location of a history key's items after the prefix (see :func:`location_to_tuple`)."""
    location: Location = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and item >= 0:
            location.append(NameIndex(item))
        elif (
            isinstance(item, tuple)
            and len(item) == 2
            and all(isinstance(x, int) and x >= 0 for x in item)
        ):
            loop, iteration = item
            assert isinstance(loop, int) and isinstance(iteration, int)
            location.append(LoopIterationMarker(loop, iteration))
        else:
            raise ProtocolError(f"invalid path segment in history key: {item!r}", code=ERROR_CODE)
    return location


def append_name(location: Location, index: int) -> Location:
    """A new location: ``location`` followed by the name index ``index``."""
    return [*location, NameIndex(index)]


def append_loop_iteration(location: Location, loop: int, iteration: int) -> Location:
    """A new location: ``location``, then the marker of iteration ``iteration`` of ``loop``."""
    return [*location, LoopIterationMarker(loop, iteration)]


def is_location_prefix(prefix: Location, location: Location) -> bool:
    """True when ``location`` starts with every segment of ``prefix``."""
    return len(prefix) <= len(location) and list(location[: len(prefix)]) == list(prefix)


def location_key(location: Location, names: Sequence[str]) -> str:
    """The engine's in-memory key of a location: names joined by ``/``, markers as ``~<iteration>``.

    Raises :class:`~rivetkit.errors.ProtocolError` for a name index missing from ``names``.
    """
    parts: list[str] = []
    for seg in location:
        if isinstance(seg, LoopIterationMarker):
            parts.append(f"~{seg.iteration}")
        elif 0 <= seg.value < len(names):
            parts.append(names[seg.value])
        else:
            raise ProtocolError(f"Name index {seg.value} not found in registry", code=ERROR_CODE)
    return "/".join(parts)


def is_scope_key(key: str, scope: str) -> bool:
    """The engine's scope test on in-memory keys: ``key`` is ``scope`` or under it (root ``""``
    holds every key). A ``/`` inside a user name can alias another scope, as in RivetKit."""
    return scope == "" or key == scope or key.startswith(scope + "/")


class NameRegistry:
    """The append-only name registry: a name's index is its first-use position (spec §2.4).

    A name reused in another scope shares its index. :meth:`unflushed` lists the names added
    since the last :meth:`mark_flushed`, each to be written at :func:`name_key`.
    """

    __slots__ = ("_flushed", "_index", "names")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        for name in names:
            self.register(name)
        self._flushed = len(self.names)

    @classmethod
    def load(cls, pairs: Iterable[tuple[int, str]]) -> NameRegistry:
        """Rebuild from stored ``(index, name)`` pairs; every index ``0..n-1`` must be present."""
        ordered = sorted(pairs)
        if [index for index, _ in ordered] != list(range(len(ordered))):
            raise ProtocolError("workflow name registry has gaps", code=ERROR_CODE)
        return cls(name for _, name in ordered)

    def register(self, name: str) -> int:
        """The index of ``name``, appending it when it is new."""
        index = self._index.get(name)
        if index is None:
            index = len(self.names)
            self.names.append(name)
            self._index[name] = index
        return index

    def resolve(self, index: int) -> str:
        """The name at ``index``; raises :class:`~rivetkit.errors.ProtocolError` when absent."""
        if 0 <= index < len(self.names):
            return self.names[index]
        raise ProtocolError(f"Name index {index} not found in registry", code=ERROR_CODE)

    def unflushed(self) -> list[tuple[int, str]]:
        """``(index, name)`` of every name registered since the last flush."""
        return list(enumerate(self.names))[self._flushed :]

    def mark_flushed(self) -> None:
        """Record that every registered name has been written."""
        self._flushed = len(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._index


# MARK: Keys

#: Where an actor stores the engine's keys: ``[6, 1]`` (``KEYS.WORKFLOW_PREFIX``, storage v1).
ACTOR_PREFIX = b"\x06\x01"
NAMES_PREFIX = pack([KeyPrefix.NAMES])
HISTORY_PREFIX = pack([KeyPrefix.HISTORY])
WORKFLOW_PREFIX = pack([KeyPrefix.WORKFLOW])
ENTRY_METADATA_PREFIX = pack([KeyPrefix.ENTRY_METADATA])


def name_key(index: int) -> bytes:
    """Key of name ``index``: ``(1, index)``."""
    return pack([KeyPrefix.NAMES, index])


def history_key(location: Location) -> bytes:
    """Key of the history entry at ``location``: ``(2, *location)``."""
    return pack([KeyPrefix.HISTORY, *location_to_tuple(location)])


#: Prefix of every history key at or under ``location`` (the same bytes as its key).
history_prefix = history_key


def workflow_key(field: Field) -> bytes:
    """Key of a workflow field: ``(3, field)``."""
    return pack([KeyPrefix.WORKFLOW, int(field)])


def metadata_key(entry_id: str) -> bytes:
    """Key of an entry's metadata: ``(4, entry_id)``."""
    return pack([KeyPrefix.ENTRY_METADATA, entry_id])


def loop_iteration_range(
    loop_location: Location, loop: int, start: int, end: int
) -> tuple[bytes, bytes]:
    """Half-open key range of iterations ``start <= i < end`` of a loop, with their children.

    ``loop_location`` is the location the loop's iterations sit under (the loop entry's
    location) and ``loop`` the loop's name index.
    """
    base = [KeyPrefix.HISTORY, *location_to_tuple(loop_location)]
    return pack([*base, (loop, start)]), pack([*base, (loop, end)])


def prefix_end(prefix: bytes) -> bytes:
    """The exclusive end of the keys starting with ``prefix`` (last non-``ff`` byte + 1)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        raise ValueError("a prefix of only 0xff bytes has no end")
    return stripped[:-1] + bytes([stripped[-1] + 1])


def actor_key(key: bytes) -> bytes:
    """The actor KV key of an engine key (``[6, 1] + key``)."""
    return ACTOR_PREFIX + key


def engine_key(key: bytes) -> bytes:
    """The engine key of an actor KV key; raises ProtocolError outside ``[6, 1]``."""
    if not key.startswith(ACTOR_PREFIX):
        raise ProtocolError("not a workflow key", code=ERROR_CODE)
    return key[len(ACTOR_PREFIX) :]


# MARK: Parsing


class NameKey(NamedTuple):
    """A parsed ``(1, name_index)`` key."""

    name_index: int


class HistoryKey(NamedTuple):
    """A parsed ``(2, *location)`` key."""

    location: Location


class WorkflowKey(NamedTuple):
    """A parsed ``(3, field)`` key."""

    field: Field


class MetadataKey(NamedTuple):
    """A parsed ``(4, entry_id)`` key."""

    entry_id: str


class OtherKey(NamedTuple):
    """A key the engine does not read (prefix 5, or any unknown shape): readers skip it."""

    items: tuple[TupleItem, ...]


EngineKey: TypeAlias = NameKey | HistoryKey | WorkflowKey | MetadataKey | OtherKey


def parse_key(key: bytes) -> EngineKey:
    """Parse an engine key (without the actor prefix).

    Keys of the reserved prefix 5, of an unknown prefix or an unknown workflow field parse as
    :class:`OtherKey`; a malformed key of a known prefix raises ProtocolError.
    """
    items = unpack(key)
    head = items[0] if items else None
    rest = items[1:]
    if head == KeyPrefix.NAMES:
        if len(rest) == 1 and isinstance(rest[0], int) and rest[0] >= 0:
            return NameKey(rest[0])
        raise ProtocolError("Invalid name key", code=ERROR_CODE)
    if head == KeyPrefix.HISTORY:
        return HistoryKey(location_from_tuple(rest))
    if head == KeyPrefix.ENTRY_METADATA:
        if len(rest) == 1 and isinstance(rest[0], str):
            return MetadataKey(rest[0])
        raise ProtocolError("Invalid entry metadata key", code=ERROR_CODE)
    if head == KeyPrefix.WORKFLOW and len(rest) == 1 and rest[0] in tuple(Field):
        assert isinstance(rest[0], int)
        return WorkflowKey(Field(rest[0]))
    return OtherKey(items)
