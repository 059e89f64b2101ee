"""Actors calling actors through ``c.client()``: the registry of tests/test_actor_calls*.py
and benchmarks/bench_actor_calls.py."""

from __future__ import annotations

import asyncio
from typing import Any

from rivetkit import ActorOptions, UserError, actor, setup

#: A plain (non-serial) actor: a counter that calls others.
acct = actor("acct", state={"n": 0})


@acct.action
def add(c: Any, x: int) -> int:
    """Add ``x`` to the counter; returns it."""
    c.state["n"] += x
    return int(c.state["n"])


@acct.action
async def add_async(c: Any, x: int) -> int:
    """:func:`add` as an async action."""
    c.state["n"] += x
    return int(c.state["n"])


@acct.action
def fail(c: Any) -> None:
    """Always a user error with metadata."""
    raise UserError("no luck", code="bad_luck", metadata={"tries": 3})


@acct.action
async def call_add(c: Any, key: str, x: int) -> int:
    """``add(x)`` on ``acct[key]`` through ``c.client()``."""
    return int(await c.client().acct.get_or_create([key]).add(x))


@acct.action
async def call_typed(c: Any, key: str, x: int) -> int:
    """As :func:`call_add`, with the typed ``handle.call``."""
    return int(await c.client().acct.get_or_create([key]).call(add, x))


@acct.action
async def relay_fail(c: Any, key: str) -> None:
    """``fail()`` on ``acct[key]``; its user error is raised again unchanged."""
    await c.client().acct.get_or_create([key]).fail()


@acct.action
async def add_to_self(c: Any, x: int) -> int:
    """A call to this very actor (it is not serial: answered)."""
    return int(await c.client().acct.get_or_create(c.key).add(x))


@acct.action
async def round_trip(c: Any, via: str) -> int:
    """acct -> bounce[via] -> this acct: a cycle through a non-serial actor (answered)."""
    return int(await c.client().bounce.get_or_create([via]).back("acct", c.key))


@acct.action
def same_client(c: Any) -> bool:
    """True when ``c.client()`` is one object."""
    return c.client() is c.client()


@acct.action
async def by_id(c: Any, key: str) -> list[Any]:
    """Resolve ``acct[key]``, then call it through ``get_for_id``."""
    client = c.client()
    actor_id = await client.acct.get_or_create([key]).resolve()
    return [actor_id, await client.acct.get_for_id(actor_id).add(0)]


@acct.action
def shout(c: Any, text: str) -> str:
    """Broadcast ``text`` as event ``shout``."""
    c.broadcast("shout", text)
    return text


@acct.action
async def listen(c: Any, key: str, text: str) -> list[Any]:
    """Connect to ``acct[key]``, make it shout, and return the event's args."""
    conn = c.client().acct.get_or_create([key]).connect()
    try:
        await conn
        waiting = asyncio.ensure_future(conn.next_event("shout", timeout=5))
        await asyncio.sleep(0)  # the subscription goes out before the action
        await conn.shout(text)
        return list(await waiting)
    finally:
        await conn.close()


@acct.action
async def post(c: Any, key: str, body: Any) -> None:
    """Send ``body`` to queue ``jobs`` of ``acct[key]``."""
    await c.client().acct.get_or_create([key]).send("jobs", body)


@acct.action
async def take(c: Any) -> Any:
    """The next message of queue ``jobs`` (its body), None after 2 s."""
    message = await c.queue.next(["jobs"], timeout=2)
    return None if message is None else message.body


bounce = actor("bounce", state={})


@bounce.action
async def back(c: Any, name: str, key: list[str]) -> Any:
    """Call ``add(1)`` on ``name[key]`` (the caller, in a cycle)."""
    return await c.client().get_or_create(name, key).add(1)


@bounce.action
async def back_inner(c: Any, key: list[str]) -> Any:
    """Call ``inner()`` on ``ser[key]``."""
    return await c.client().ser.get_or_create(key).inner()


#: A serial actor: a call back to itself cannot be answered, so it is refused.
ser = actor("ser", state={}, options=ActorOptions(serial=True, action_timeout=5.0))


@ser.action
async def outer(c: Any) -> Any:
    """Call ``inner()`` on this same actor."""
    return await c.client().ser.get_or_create(c.key).inner()


@ser.action
async def outer_via(c: Any, via: str) -> Any:
    """ser -> bounce[via] -> this ser."""
    return await c.client().bounce.get_or_create([via]).back_inner(c.key)


@ser.action
async def outer_other(c: Any, key: str) -> Any:
    """Call ``inner()`` on another ``ser`` (no cycle: answered)."""
    return await c.client().ser.get_or_create([key]).inner()


@ser.action
def inner(c: Any) -> str:
    """Answers ``inner``."""
    return "inner"


#: An actor that sleeps after 1 s idle and counts its wakes.
sleepy = actor("sleepy", state={"wakes": 0, "n": 0}, options=ActorOptions(sleep_timeout=1.0))


@sleepy.on_wake
def count_wake(c: Any) -> None:
    """One more start."""
    c.state["wakes"] += 1


@sleepy.action
def bump(c: Any) -> dict[str, int]:
    """Count a call; returns the counts."""
    c.state["n"] += 1
    return {"wakes": c.state["wakes"], "n": c.state["n"]}


@acct.action
async def bump_sleepy(c: Any, key: str) -> Any:
    """``bump()`` on ``sleepy[key]``."""
    return await c.client().sleepy.get_or_create([key]).bump()


registry = setup(use=[acct, bounce, ser, sleepy])
