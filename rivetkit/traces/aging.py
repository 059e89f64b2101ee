"""One loop timer for the chunk-age seals of every trace recorder on an event loop.

A recorder's chunk is sealed :data:`~rivetkit.traces.recorder.CHUNK_AGE` seconds after its
first record. A loop timer per open chunk (``loop.call_later``) costs each live actor a timer
handle and its libuv timer (~600 B under uvloop) and a timer made and cancelled per actor.
Here the deadlines of every recorder of a loop with the same chunk age share *slots* of
:data:`SLOT_WIDTH` seconds: a slot is a dict whose keys are the recorders whose chunk is due
in it (insertion-ordered, values None), and one ``loop.call_at`` waits for the earliest slot.
A recorder keeps the dict it is in, so sealing or closing removes it in O(1) (nothing stays
behind to hold a stopped actor's recorder until its deadline, as a heap with lazy cancels
would); a deadline is rounded up to the end of its slot, so **a chunk is sealed up to**
:data:`SLOT_WIDTH` **seconds after its age passes**, never before.

Every chunk of one :class:`ChunkAges` has the same age and the loop's clock does not go back,
so slots are opened in deadline order: the first slot of the dict is always the next due.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Final, Protocol

__all__ = ["SLOT_WIDTH", "AgeSlot", "Ageing", "ChunkAges", "ages_of"]

#: Width of a slot, in seconds: how much later than its age a chunk may be sealed.
SLOT_WIDTH: Final = 0.25

#: The recorders whose chunk is due in one slot (values unused).
AgeSlot = dict[Any, None]


class Ageing(Protocol):
    """What a slot holds: a recorder that seals its chunk when told it is old enough."""

    def _age_out(self) -> None: ...


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, ChunkAges]] = (
    weakref.WeakKeyDictionary()
)
#: The last one asked for (most processes have one loop and one age): no registry lookup.
_last: ChunkAges | None = None


def ages_of(loop: asyncio.AbstractEventLoop, age: float) -> ChunkAges:
    """The chunk-age slots of ``loop`` for chunks of ``age`` seconds (made on first use)."""
    global _last
    ages = _last
    if ages is not None and ages.age == age and ages._loop_ref() is loop:
        return ages
    by_age = _BY_LOOP.get(loop)
    if by_age is None:
        by_age = _BY_LOOP[loop] = {}
    ages = by_age.get(age)
    if ages is None:
        ages = by_age[age] = ChunkAges(loop, age)
    _last = ages
    return ages


class ChunkAges:
    """The chunk-age deadlines of one loop's recorders with chunks of ``age`` seconds."""

    __slots__ = ("_armed", "_loop_ref", "_resolution", "_slots", "age")

    def __init__(self, loop: asyncio.AbstractEventLoop, age: float) -> None:
        self.age = age
        # Weak: the registry maps the loop to this object, which must not keep it alive.
        self._loop_ref = weakref.ref(loop)
        #: slot number (its end is ``number * SLOT_WIDTH``, loop time) -> its recorders.
        self._slots: dict[int, AgeSlot] = {}
        #: The loop timer waits for the first slot.
        self._armed = False
        # asyncio runs timers due within its clock resolution; uvloop's clock is in ms.
        self._resolution: float = getattr(loop, "_clock_resolution", 0.001)

    def add(self, recorder: Ageing, now: float) -> AgeSlot:
        """Put ``recorder``, whose chunk opened at loop time ``now``, in the slot where its
        age passes; returns that slot (delete the recorder from it when the chunk is sealed
        otherwise). ``recorder._age_out()`` is called when the slot ends."""
        number = -int(-(now + self.age) // SLOT_WIDTH)  # (the slot ending at or after it)
        slots = self._slots
        slot = slots.get(number)
        if slot is None:
            slot = slots[number] = {}
            if not self._armed:
                self._arm(number)
        slot[recorder] = None
        return slot

    def __len__(self) -> int:
        """Recorders waiting (every slot)."""
        return sum(len(slot) for slot in self._slots.values())

    def _arm(self, number: int) -> None:
        loop = self._loop_ref()
        if loop is None:
            return
        self._armed = True
        loop.call_at(number * SLOT_WIDTH, self._fire)

    def _fire(self) -> None:
        self._armed = False
        loop = self._loop_ref()
        if loop is None:
            return
        slots = self._slots
        end = loop.time() + self._resolution
        while slots:
            number = next(iter(slots))
            if number * SLOT_WIDTH > end:
                break
            slot = slots.pop(number)
            while slot:  # (last first: popitem is O(1); the order does not matter)
                recorder = slot.popitem()[0]
                try:
                    recorder._age_out()
                except Exception as exc:  # as the loop would: report it, seal the others
                    loop.call_exception_handler(
                        {"message": "sealing an aged trace chunk failed", "exception": exc}
                    )
        if slots:
            self._arm(next(iter(slots)))
