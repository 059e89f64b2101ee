"""The in-memory history of one workflow: names, entries, metadata, dirty tracking.

A :class:`History` is what a run reads and writes; :mod:`rivetkit.workflow.storage` loads it
from the actor's KV and turns its dirty parts into one KV batch (a *flush*). Entries are
mutable here (the codec's types are immutable) and hold decoded Python values; the CBOR
encoding happens at the flush.

Locations (spec §2.4) are tuples of segments: an ``int`` is a name index, a ``(loop,
iteration)`` pair is a loop-iteration marker. The in-memory key of a location is its names
joined with ``/``, a marker shown as ``~<iteration>`` (``L/~0/x``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "UNSET",
    "Branch",
    "Entry",
    "History",
    "Location",
    "Metadata",
    "Segment",
    "is_under",
]


class _Unset:
    """The absent value (JavaScript's ``undefined``): no output recorded."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


#: No value (an absent ``optional<Cbor>``); user code sees None.
UNSET: Final = _Unset()

#: A location segment: a name index, or a ``(loop name index, iteration)`` marker.
Segment = int | tuple[int, int]
#: Where an entry sits in the workflow tree, from the root.
Location = tuple[Segment, ...]


@dataclass(slots=True)
class Branch:
    """One branch of a join or race: ``pending``, ``running``, ``completed``, ``failed``,
    ``cancelled``; its output once completed, its error text once failed."""

    status: str = "pending"
    output: Any = UNSET
    error: str | None = None


@dataclass(slots=True)
class Entry:
    """One history entry. ``kind`` is ``step``, ``loop``, ``sleep``, ``message``,
    ``rollback_checkpoint``, ``join``, ``race``, ``removed`` or ``version_check``; the other
    fields hold that kind's data (the unused ones keep their defaults)."""

    id: str
    location: Location
    kind: str
    #: step and loop: the output (UNSET: absent).
    output: Any = UNSET
    #: step: the error text of the last failed attempt.
    error: str | None = None
    #: loop: the carried state; iteration: the next iteration to run.
    state: Any = None
    iteration: int = 0
    #: sleep: deadline in ms since the epoch and ``pending``/``completed``/``interrupted``.
    deadline: int = 0
    sleep_state: str = "pending"
    #: message: its name and decoded data; rollback_checkpoint: its name.
    name: str = ""
    data: Any = None
    #: join and race.
    branches: dict[str, Branch] = field(default_factory=dict)
    winner: str | None = None
    #: removed.
    original_type: str = ""
    original_name: str | None = None
    #: version_check.
    resolved: int = 0
    latest: int = 0


@dataclass(slots=True)
class Metadata:
    """The metadata row of a step or loop entry; times in ms since the epoch."""

    status: str = "pending"
    error: str | None = None
    attempts: int = 0
    last_attempt_at: int = 0
    created_at: int = 0
    completed_at: int | None = None
    rollback_completed_at: int | None = None
    rollback_error: str | None = None


def is_under(scope: Location, location: Location) -> bool:
    """True when ``location`` is ``scope`` or inside it."""
    return location[: len(scope)] == scope


class History:
    """Names, entries and metadata of one workflow, with what changed since the last flush."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        #: Names below this index are stored.
        self.flushed_names = 0
        #: Entries by in-memory key.
        self.entries: dict[str, Entry] = {}
        #: Metadata rows by entry id (load order, then creation order).
        self.metadata: dict[str, Metadata] = {}
        self.dirty_entries: dict[str, None] = {}
        self.dirty_metadata: dict[str, None] = {}
        #: Deletions applied after the next flush's writes: history locations, metadata
        #: ids, whole scopes (prefix deletes) and loop-iteration ranges.
        self.deleted_locations: list[Location] = []
        self.deleted_metadata: list[str] = []
        self.deleted_scopes: list[Location] = []
        self.deleted_ranges: list[tuple[Location, int, int, int]] = []
        #: Workflow fields: the ``[3,1]`` state text, the output and the error record.
        self.state = "pending"
        self.state_dirty = False
        self.output: Any = UNSET
        self.output_dirty = False
        self.error: dict[str, Any] | None = None
        self.error_dirty = False
        #: The input key ``[3,4]`` exists.
        self.has_input = False
        self.input_dirty = False

    # -- names and keys -------------------------------------------------------------------

    def register(self, name: str) -> int:
        """The index of ``name`` in the registry, appended on first use."""
        index = self._index.get(name)
        if index is None:
            index = self._index[name] = len(self.names)
            self.names.append(name)
        return index

    def set_names(self, names: list[str]) -> None:
        """Install the stored registry (index order)."""
        self.names = list(names)
        self._index = {n: i for i, n in enumerate(self.names)}
        self.flushed_names = len(self.names)

    def key(self, location: Location) -> str:
        """The in-memory key of ``location``."""
        names = self.names
        return "/".join(names[s] if isinstance(s, int) else f"~{s[1]}" for s in location)

    # -- entries ----------------------------------------------------------------------------

    def add(self, location: Location, kind: str, **data: Any) -> Entry:
        """Create an entry at ``location`` (a fresh UUIDv4 id), marked dirty."""
        entry = Entry(str(uuid.uuid4()), location, kind, **data)
        key = self.key(location)
        self.entries[key] = entry
        self.dirty_entries[key] = None
        return entry

    def touch(self, entry: Entry) -> None:
        """``entry`` changed: write it at the next flush."""
        self.dirty_entries[self.key(entry.location)] = None

    def meta(self, entry: Entry, now_ms: int) -> Metadata:
        """The metadata of ``entry``, created (``created_at`` = now) when missing."""
        meta = self.metadata.get(entry.id)
        if meta is None:
            meta = self.metadata[entry.id] = Metadata(created_at=now_ms)
            self.dirty_metadata[entry.id] = None
        return meta

    def touch_meta(self, entry_id: str) -> None:
        """The metadata of ``entry_id`` changed: write it at the next flush."""
        self.dirty_metadata[entry_id] = None

    def drop(self, key: str) -> None:
        """Forget the entry at ``key`` and its metadata (deleted from storage one by one)."""
        entry = self.entries.pop(key, None)
        if entry is None:
            return
        self.dirty_entries.pop(key, None)
        self.deleted_locations.append(entry.location)
        if self.metadata.pop(entry.id, None) is not None:
            self.dirty_metadata.pop(entry.id, None)
            self.deleted_metadata.append(entry.id)

    def drop_scope(self, scope: Location) -> None:
        """Forget every entry inside ``scope`` (one prefix delete in storage)."""
        for key, entry in list(self.entries.items()):
            if is_under(scope, entry.location):
                del self.entries[key]
                self.dirty_entries.pop(key, None)
                if self.metadata.pop(entry.id, None) is not None:
                    self.dirty_metadata.pop(entry.id, None)
                    self.deleted_metadata.append(entry.id)
        self.deleted_scopes.append(scope)

    def drop_iterations(self, loop: Location, start: int, end: int) -> None:
        """Forget iterations ``[start, end)`` of the loop at ``loop`` (one range delete)."""
        index = loop[-1]
        assert isinstance(index, int)
        depth = len(loop)
        for key, entry in list(self.entries.items()):
            loc = entry.location
            if len(loc) <= depth or loc[:depth] != loop:
                continue
            marker = loc[depth]
            if isinstance(marker, tuple) and marker[0] == index and start <= marker[1] < end:
                del self.entries[key]
                self.dirty_entries.pop(key, None)
                if self.metadata.pop(entry.id, None) is not None:
                    self.dirty_metadata.pop(entry.id, None)
                    self.deleted_metadata.append(entry.id)
        self.deleted_ranges.append((loop, index, start, end))

    # -- workflow fields --------------------------------------------------------------------

    def set_state(self, state: str) -> None:
        """Set the ``[3,1]`` state text (written at the next flush when it changed)."""
        if state != self.state:
            self.state = state
            self.state_dirty = True

    def set_output(self, output: Any) -> None:
        """Set the workflow's output (written at the next flush)."""
        self.output = output
        self.output_dirty = True

    def set_error(self, record: dict[str, Any]) -> None:
        """Set the error record; rewritten only when its name or message changed."""
        old = self.error
        if (
            old is None
            or old.get("name") != record.get("name")
            or (old.get("message") != record.get("message"))
        ):
            self.error = record
            self.error_dirty = True

    @property
    def dirty(self) -> bool:
        """Anything to write or delete at the next flush."""
        return bool(
            self.flushed_names < len(self.names)
            or self.dirty_entries
            or self.dirty_metadata
            or self.deleted_locations
            or self.deleted_metadata
            or self.deleted_scopes
            or self.deleted_ranges
            or self.state_dirty
            or self.output_dirty
            or self.error_dirty
            or self.input_dirty
        )
