"""A generation's trace chunks never take the key of a stored chunk
(rivetkit/traces/recorder.py, ``TraceStorage._clear_of``).

A chunk's id is the millisecond of its bucket it opened in, so a generation starting within
the millisecond of the previous generation's last chunk (or behind a clock stepped back) would
number its first chunk like a stored one and overwrite it. Its first write lists the stored
chunks anyway and moves its ids past theirs, with the start refs of its spans."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from trace_helpers import LaterStore as MemoryStore

from rivetkit.traces import ActorTraces
from rivetkit.traces.schema import CHUNK, SpanEnd, SpanStart, chunk_key, parse_chunk_key

pytestmark = pytest.mark.asyncio

NOW = 1_700_000_123_456_789_000  # a fixed clock: every chunk opens in the same millisecond


class HandOverStore(MemoryStore):
    """With ``put_soon`` (the embedded driver's road for a stopping actor's last chunks)."""

    def put_soon(self, puts: list[tuple[bytes, bytes]], done: Any) -> bool:
        self.data.update(puts)
        asyncio.get_running_loop().call_soon(done, True, None)
        return True


def _chunks(store: MemoryStore) -> list[tuple[tuple[int, int], Any]]:
    out = []
    for key, value in sorted(store.data.items()):
        where = parse_chunk_key(key)
        assert where is not None
        out.append((where, CHUNK.decode(value)))
    return out


def _span_id(recorder: ActorTraces, span: Any) -> bytes:
    return ((recorder.id_base + span.seq) & (2**64 - 1)).to_bytes(8, "big")


async def _generation(store: MemoryStore, name: str, *, preload: bool = False) -> ActorTraces:
    recorder = ActorTraces(store, clock_ns=lambda: NOW)
    if preload:
        await recorder.preload()
    recorder.instant("action", name)
    await recorder.close()
    return recorder


@pytest.mark.parametrize("store_type", [MemoryStore, HandOverStore])
@pytest.mark.parametrize("preload", [False, True])
async def test_generations_in_one_millisecond_keep_every_chunk(
    store_type: type[MemoryStore], preload: bool
) -> None:
    store = store_type()
    for name in ("first", "second", "third"):
        await _generation(store, name, preload=preload)
    chunks = _chunks(store)
    assert len(chunks) == 3  # none replaced
    buckets = {where[0] for where, _ in chunks}
    ids = [where[1] for where, _ in chunks]
    assert len(buckets) == 1 and ids == [ids[0], ids[0] + 1, ids[0] + 2]
    names = [" ".join(chunk.strings) for _, chunk in chunks]
    assert [("first" in s, "second" in s, "third" in s) for s in names] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]


async def test_start_refs_follow_their_renumbered_chunk() -> None:
    store = MemoryStore()
    await _generation(store, "before")
    [(first_where, _)] = _chunks(store)

    again = ActorTraces(store, clock_ns=lambda: NOW)
    long = again.start("action", "long")  # runs across two chunks
    again.instant("action", "a")
    again._seal()  # its start goes into this chunk: a start ref to it, before any write
    assert long.start_ref == (first_where[0], first_where[1], 0)  # the stored chunk's id
    long.end()  # in the next chunk (id + 1), as a SpanEnd referring to the start
    await again.close()

    chunks = _chunks(store)
    assert [where for where, _ in chunks] == [
        first_where,
        (first_where[0], first_where[1] + 1),
        (first_where[0], first_where[1] + 2),
    ]
    assert long.start_ref == (first_where[0], first_where[1] + 1, 0)
    started = chunks[1][1]
    start = started.records[0].body
    assert isinstance(start, SpanStart) and start.span_id == _span_id(again, long)
    [active] = started.active_spans
    assert active.span_id == start.span_id
    assert (active.start_key.bucket_start_sec, active.start_key.chunk_id) == chunks[1][0]
    ended = chunks[2][1]
    assert any(
        isinstance(r.body, SpanEnd) and r.body.span_id == start.span_id for r in ended.records
    )
    assert not any(isinstance(r.body, SpanStart) for r in ended.records)


async def test_ids_clear_of_the_stored_ones_are_left_alone() -> None:
    store = MemoryStore()
    older = await _generation(store, "before")
    [(where, _)] = _chunks(store)
    # A chunk stored far above in another bucket (a clock that was ahead) does not move ours.
    store.data[chunk_key(where[0] + 3600, 5)] = next(iter(store.data.values()))
    later = ActorTraces(store, clock_ns=lambda: NOW + 10_000_000)  # 10 ms later
    later.instant("action", "later")
    await later.close()
    ids = sorted(parse_chunk_key(k) for k in store.data)  # type: ignore[type-var]
    assert ids == [where, (where[0], where[1] + 10), (where[0] + 3600, 5)]
    assert older._checked and later._checked


async def test_chunk_key_is_the_tuple_packing() -> None:
    """``chunk_key``'s inlined packing of the chunk id gives the tuple layer's bytes."""
    from rivetkit.runtime.keys import TRACES_PREFIX
    from rivetkit.traces.schema import DATA_PREFIX, _pack_int

    for bucket in (0, 3600, 1_764_000_000):
        for chunk_id in (0, 1, 255, 256, 65_535, 3_599_999, 2**56, 2**64 - 1, 2**64, 2**70):
            expected = TRACES_PREFIX + _pack_int(DATA_PREFIX) + _pack_int(bucket)
            assert chunk_key(bucket, chunk_id) == expected + _pack_int(chunk_id)
            assert parse_chunk_key(chunk_key(bucket, chunk_id)) == (
                (bucket, chunk_id) if chunk_id < 2**64 else None
            )
