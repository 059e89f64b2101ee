"""Workflow queue waits: ``ctx.queue.next``/``next_batch`` with names, counts and timeouts,
the recorded entries, replay, and the actor sleeping while the workflow waits."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from workflow_helpers import started, stored, wait_state, wf_actor

from rivetkit import setup
from rivetkit.protocol.workflow_engine.cbor import decode_cbor
from rivetkit.testing import setup_test
from rivetkit.workflow import workflow

pytestmark = pytest.mark.asyncio


async def test_next_waits_records_and_replays(tmp_path: Path) -> None:
    got: list[Any] = []
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        msg = await ctx.queue.next("job", names=["work"])
        got.append((msg.name, msg.body))
        await ctx.step("use", lambda s: s.state.update(body=msg.body))
        await ctx.sleep("hold", 30.0)

    registry = setup(use=[wf])
    async with setup_test(registry, tmp_path) as t:
        h = t.wf.get_or_create("q")
        actor_id = await started(h)
        await wait_state(t, actor_id, "sleeping")
        await h.send("other", {"x": 0})  # not a name the workflow waits for
        await asyncio.sleep(0.1)
        assert got == []
        await h.send("work", {"x": 1})
        await t.settle()
        history = await wait_state(t, actor_id, "sleeping")
        for _ in range(100):
            history = await stored(t, actor_id)
            if "hold" in history.entries:
                break
            await asyncio.sleep(0.01)
        assert got == [("work", {"x": 1})]
        count = history.entries["job:count"]
        assert (count.kind, count.name, count.data) == ("message", "work:count", 1)
        first = history.entries["job:0"]
        assert first.name == "work"
        assert first.data["__rivetWorkflowQueueMessage"] == 1
        assert first.data["body"] == {"x": 1} and first.data["completed"] is False
        assert "job" not in history.names  # only the internal names are registered
        assert await h.get() == {"body": {"x": 1}}
    # Replayed after a restart: the recorded message comes back, the queue is not read again.
    async with setup_test(registry, tmp_path) as t:
        h = t.wf.get_or_create("q")
        await started(h)
        await asyncio.sleep(0.1)
        assert got[-1] == ("work", {"x": 1})
        assert await h.get() == {"body": {"x": 1}}


async def test_next_batch_with_timeout_returns_empty(tmp_path: Path) -> None:
    results: list[Any] = []
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        batch = await ctx.queue.next_batch("poll", names=["a", "b"], count=5, timeout=10.0)
        results.append([m.body for m in batch])
        return len(batch)

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("b"))
        history = await wait_state(t, actor_id, "sleeping")
        deadline = history.entries["poll:deadline"]
        assert (deadline.kind, deadline.sleep_state) == ("sleep", "pending")
        await t.advance(11.0)
        history = await wait_state(t, actor_id, "completed")
        assert results == [[]]
        assert history.entries["poll:deadline"].sleep_state == "completed"
        assert history.entries["poll:count"].name == "a|b:count"
        assert history.entries["poll:count"].data == 0


async def test_batch_arrives_before_the_timeout(tmp_path: Path) -> None:
    results: list[Any] = []
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        batch = await ctx.queue.next_batch("poll", count=2, timeout=60.0)
        results.append([(m.name, m.body) for m in batch])

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        h = t.wf.get_or_create("b")
        actor_id = await started(h)
        await wait_state(t, actor_id, "sleeping")
        await h.send("x", 1)
        history = await wait_state(t, actor_id, "completed")
        assert results == [[("x", 1)]]
        assert history.entries["poll:deadline"].sleep_state == "interrupted"
        assert history.entries["poll:count"].name == "*:count"


async def test_next_timeout_fails_the_workflow(tmp_path: Path) -> None:
    wf = wf_actor()

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        await ctx.queue.next("must", names=["go"], timeout=5.0)

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        actor_id = await started(t.wf.get_or_create("t"))
        await wait_state(t, actor_id, "sleeping")
        await t.advance(6.0)
        history = await wait_state(t, actor_id, "failed")
        assert history.error is not None
        assert history.error["message"] == (
            'queue.next("must") timed out before receiving a message. Use '
            "queue.next_batch(...) for optional/time-limited reads."
        )


async def test_actor_sleeps_while_waiting_and_a_send_wakes_it(tmp_path: Path) -> None:
    got: list[Any] = []
    wf = wf_actor(sleep_timeout=1.0)

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        msg = await ctx.queue.next("wait", names=["go"])
        got.append(msg.body)

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        h = t.wf.get_or_create("s")
        actor_id = await started(h)
        await wait_state(t, actor_id, "sleeping")
        await t.advance(2.0)
        assert actor_id not in t.runtime.instances  # asleep while it waits
        await h.send("go", "now")
        await wait_state(t, actor_id, "completed")
        assert got == ["now"]


async def test_completable_messages(tmp_path: Path) -> None:
    wf = wf_actor()
    errors: list[str] = []

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        msg = await ctx.queue.next("req", completable=True)
        try:
            await ctx.queue.next("req2")
        except Exception as exc:  # the previous message is not completed yet
            errors.append(str(exc))
        await msg.complete({"ok": True})
        return msg.body

    async with setup_test(setup(use=[wf]), tmp_path) as t:
        h = t.wf.get_or_create("c")
        actor_id = await started(h)
        await wait_state(t, actor_id, "sleeping")
        await h.send("ask", 3)
        history = await wait_state(t, actor_id, "completed")
        assert errors and errors[0].startswith("Previous completable queue message")
        assert history.entries["req:0"].data["completed"] is True
        assert history.output == 3


async def test_recorded_message_bytes_decode_as_rivetkit_writes_them() -> None:
    from rivetkit.workflow.wire import cbor_encode

    data = {
        "__rivetWorkflowQueueMessage": 1,
        "id": "7",
        "name": "job",
        "body": {"v": 1},
        "createdAt": 1700000000000,
        "completed": False,
    }
    raw = cbor_encode(data)
    assert raw.hex().startswith("b90006781b")
    assert bytes.fromhex("fb4278bcfe56800000") in raw
    assert decode_cbor(raw) == data


async def test_a_receive_recorded_before_a_crash_is_not_received_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies after the history holding a received message is written and before
    the message is deleted from the queue: the replay takes the leftover, so a later receive
    does not get the same message again."""
    from rivetkit.runtime.queue_message import QueueMessage

    got: list[Any] = []
    wf = wf_actor(sleep_grace_period=0.3)

    @wf.run
    @workflow
    async def run(ctx):  # type: ignore[no-untyped-def]
        msg = await ctx.queue.next("first", names=["work"])
        got.append(("first", msg.body))
        later = await ctx.queue.next("second", names=["work"])
        got.append(("second", later.body))

    dead = asyncio.Event()
    original = QueueMessage.complete

    async def complete(self: QueueMessage, response: Any = None) -> None:
        dead.set()
        await asyncio.Event().wait()  # the process died here: the delete never happens

    monkeypatch.setattr(QueueMessage, "complete", complete)
    registry = setup(use=[wf])
    async with setup_test(registry, tmp_path) as t:
        h = t.wf.get_or_create("crash")
        actor_id = await started(h)
        await wait_state(t, actor_id, "sleeping")
        await h.send("work", {"n": 1})
        await asyncio.wait_for(dead.wait(), 5)
        assert "first:0" in (await stored(t, actor_id)).entries
    assert got == []
    monkeypatch.setattr(QueueMessage, "complete", original)
    async with setup_test(registry, tmp_path) as t:
        h = t.wf.get_or_create("crash")
        await started(h)
        await wait_state(t, actor_id, "sleeping")  # waiting in "second"
        assert "second" not in dict(got)
        assert got[0] == ("first", {"n": 1})
        # The leftover was taken from the queue; a new message reaches "second".
        await h.send("work", {"n": 2})
        for _ in range(300):
            if "second" in dict(got):
                break
            await asyncio.sleep(0.01)
        assert dict(got) == {"first": {"n": 1}, "second": {"n": 2}}
