"""A chunk's stored bytes (rivetkit/traces/encode.py): the one-info path (plain spans of one
kind and name, nothing running: a short-lived actor's chunk, a busy action's) gives the
same bytes as the general encoder and as the schema codec, on both span twins; every other
chunk takes the general path. Span infos are shared by the recorders of a process."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from conftest import TWIN_IDS, twin
from rivetkit.errors import UserError
from rivetkit.traces import encode
from rivetkit.traces.recorder import TraceStorage
from rivetkit.traces.schema import CHUNK
from rivetkit.traces.wire import build_chunk

pytestmark = pytest.mark.asyncio
PURE = "rivetkit.traces._spans_py"
START_NS = (1_764_000_000 // 3600 * 3600 + 1800) * 1_000_000_000


class StepClock:
    """Epoch nanoseconds that advance 1 ms per read."""

    def __init__(self, start_ns: int) -> None:
        self.now = start_ns

    def __call__(self) -> int:
        self.now += 1_000_000
        return self.now


class NoStore:
    """A store never reached (the chunks are encoded, not written)."""

    async def write(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> None:
        raise AssertionError("not written here")

    async def list(
        self, start: bytes, end: bytes | None, *, reverse: bool = False, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        return []


@pytest.fixture(params=TWIN_IDS)
def spans(request: pytest.FixtureRequest) -> ModuleType:
    """The span twin under test."""
    return twin(request.param, "_spans", PURE)


def recorder_on(spans: ModuleType) -> Any:
    cls = type(f"Traces_{spans.__name__.rsplit('.', 1)[1]}", (TraceStorage, spans.SpanRecorder), {})
    recorder = cls(NoStore(), clock_ns=StepClock(START_NS))
    recorder.closed = True  # no age timer, no writer: chunks are taken with current()
    return recorder


def check(recorder: Any, *, fast: bool, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The current chunk's bytes, checked against the general encoder and the schema codec;
    ``fast``: whether the one-info path must make them."""
    sealed = recorder.current()
    assert sealed is not None
    general = encode._encode_chunk(recorder, sealed)
    assert general == CHUNK.encode(build_chunk(recorder, sealed))
    calls = []

    def spy(traces: Any, chunk: Any) -> bytes:
        calls.append(chunk)
        return general

    with monkeypatch.context() as patch:
        patch.setattr(encode, "_encode_chunk", spy)
        data = encode.encode_chunk(recorder, sealed)
    assert data == general
    assert (not calls) is fast
    return data


async def test_one_plain_span(spans: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = recorder_on(spans)
    recorder.instant("action", "increment")
    check(recorder, fast=True, monkeypatch=monkeypatch)


async def test_many_plain_spans_of_one_name(
    spans: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = recorder_on(spans)
    for _ in range(50):
        recorder.instant("queue.receive", "jobs")
    data = check(recorder, fast=True, monkeypatch=monkeypatch)
    assert len(CHUNK.decode(data).records) == 100


@pytest.mark.parametrize("shape", ["two_names", "failed", "extra", "child", "running"])
async def test_other_chunks_take_the_general_path(
    spans: ModuleType, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    recorder = recorder_on(spans)
    recorder.instant("action", "increment")
    if shape == "two_names":
        recorder.instant("action", "decrement")
    elif shape == "failed":
        span = recorder.start("action", "increment")
        span.fail(UserError("no", code="refused"))
        span.end()
    elif shape == "extra":
        recorder.instant("action", "increment", {"rivet.queue.count": 2})
    elif shape == "child":
        parent = recorder.start("action", "increment")
        recorder.instant("action", "increment")
        parent.end()
    else:
        recorder.start("action", "increment")
    check(recorder, fast=False, monkeypatch=monkeypatch)


async def test_recorders_share_span_infos_and_bytes(
    spans: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = recorder_on(spans), recorder_on(spans)
    first.instant("action", "shared")
    second.instant("action", "shared")
    assert first.current().records[0].info is second.current().records[0].info
    one = check(first, fast=True, monkeypatch=monkeypatch)
    two = check(second, fast=True, monkeypatch=monkeypatch)
    assert CHUNK.decode(one).strings == CHUNK.decode(two).strings


async def test_the_cache_bound_clears_it(
    spans: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encode, "_ONE_INFO_MAX", 1)
    recorder = recorder_on(spans)
    for name in ("a", "b", "c"):
        recorder.instant("hook", f"bound_{name}")
        check(recorder, fast=True, monkeypatch=monkeypatch)
        assert len(encode._ONE_INFO) == 1
        recorder._records = []


async def test_records_given_their_tail_as_bytes(
    spans: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``encode_records`` given the plain spans' tail as bytes makes what it makes asking a
    ``tail_of`` for it (the other entries still go to ``other``); past 127 records the
    one-info path's count takes more than a byte."""
    recorder = recorder_on(spans)
    for _ in range(70):
        recorder.instant("action", "tailed")
    child = recorder.start("action", "tailed")
    recorder.instant("action", "tailed")
    child.end()
    records = recorder.current().records
    base = recorder._bucket * 1_000_000_000
    tail = encode._one_info(records[0].info)[2]
    asked: list[Any] = []

    def tail_of(span: Any) -> bytes:
        asked.append(span)
        return tail

    def other(entry: Any, parts: list[bytes]) -> int:
        parts.append(b"<other>")
        return 1

    by_call: list[bytes] = []
    by_bytes: list[bytes] = []
    count = recorder.encode_records(records, base, tail_of, other, by_call)
    assert recorder.encode_records(records, base, tail, other, by_bytes) == count == 143
    assert by_bytes == by_call and by_bytes.count(b"<other>") == 1 and len(asked) == 1

    recorder = recorder_on(spans)
    for _ in range(70):
        recorder.instant("action", "tailed")
    data = check(recorder, fast=True, monkeypatch=monkeypatch)
    assert len(CHUNK.decode(data).records) == 140
