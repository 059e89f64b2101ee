"""A live actor's instance keeps its attributes inline (rivetkit/runtime/instance.py).

CPython 3.11 stores up to 30 attribute values of an instance inline (a few hundred bytes)
and makes a full dict past that (about 1.6 KB per live actor). Fields most actors never set
are class attributes of :class:`ActorInstance`, replaced on the instance when set; this file
holds the count for a typical actor through its life, and checks those fields read the same
set or not."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from rivetkit import ActorOptions, actor, setup
from rivetkit.runtime.instance import ActorInstance
from rivetkit.runtime.lazy_event import AbortSignal
from rivetkit.runtime.phase import Phase
from rivetkit.testing import setup_runtime

pytestmark = pytest.mark.asyncio

# Keys past which an instance's attributes no longer stay inline (CPython's shared keys).
INLINE_MAX = 30

plain = actor("plain", state={"count": 0}, options=ActorOptions(sleep_timeout=60.0))


@plain.action
def increment(c: Any, amount: int = 1) -> int:
    c.state["count"] += amount
    return int(c.state["count"])


@plain.action
def fields(c: Any) -> list[Any]:
    return [c.input, c.vars]


rich = actor(
    "rich",
    state={"count": 0},
    vars={"cache": 1},
    options=ActorOptions(sleep_timeout=60.0, serial=True),
)


@rich.action
def rich_fields(c: Any) -> list[Any]:
    return [c.input, c.vars]


@rich.on_state_change
def changed(c: Any, state: Any) -> None:
    pass


registry = setup(use=[plain, rich])


def _instance(rt: Any, name: str) -> ActorInstance:
    [instance] = [i for i in rt.runtime.instances.values() if i.name == name]
    return instance


async def test_a_plain_actor_keeps_its_fields_inline(tmp_path: Any) -> None:
    """Its keys: those every instance sets, in the same order, first (an actor using many
    features may pass 30 and get a dict: it alone)."""
    async with setup_runtime(registry, tmp_path) as rt:
        handle = rt.get_or_create("plain", ["a"])
        assert await handle.increment(2) == 2
        instance = _instance(rt, "plain")
        assert len(vars(instance)) < INLINE_MAX, sorted(vars(instance))
        if sys.implementation.name == "cpython" and sys.version_info[:2] == (3, 11):
            assert sys.getsizeof(vars(instance)) < 1000  # a full dict: ~1.6 KB
        # The class defaults read as the fields did.
        assert await handle.fields() == [None, None]
        assert instance.final_save_error is None and instance._run_task is None
        assert instance._serial is None and instance._gate is None
        assert instance._on_state_change is None and instance._before_response is None
        assert instance.inspector_observer is None and instance._db is None
        assert not instance._stop_requested and not instance._destroy_requested
        assert "input" not in vars(instance) and "vars" not in vars(instance)


async def test_fields_set_on_an_actor_that_uses_them(tmp_path: Any) -> None:
    async with setup_runtime(registry, tmp_path) as rt:
        handle = rt.get_or_create("rich", ["b"], input={"hello": "world"})
        assert await handle.rich_fields() == [{"hello": "world"}, {"cache": 1}]
        instance = _instance(rt, "rich")
        assert instance._serial is not None and instance._on_state_change is not None
        assert vars(instance)["input"] == {"hello": "world"}
        # Another instance of the class still reads the defaults.
        other = rt.get_or_create("plain", ["c"])
        await other.increment()
        assert _instance(rt, "plain").input is None and ActorInstance.input is None


async def test_the_abort_signal_is_made_when_read(tmp_path: Any) -> None:
    """``abort_event`` (``c.abort_signal``) is made on the first read: none for an actor that
    never reads it; read while running it is clear, then set by the stop."""
    async with setup_runtime(registry, tmp_path) as rt:
        await rt.get_or_create("plain", ["d"]).increment()
        instance = _instance(rt, "plain")
        assert "_abort" not in vars(instance)
        signal = instance.abort_event
        assert instance.abort_event is signal and not signal.is_set()
        assert instance.context.abort_signal is signal and not instance.context.aborted
        await instance.stop("sleep")
        assert signal.is_set() and instance.abort_event is signal


async def test_an_abort_signal_read_first_while_stopping_is_set() -> None:
    class Owner:
        abort_event = AbortSignal()

        def __init__(self, phase: Phase) -> None:
            self.phase = phase

    for phase in Phase:
        owner = Owner(phase)
        event = owner.abort_event
        assert isinstance(event, asyncio.Event) and owner.abort_event is event
        assert event.is_set() == (phase >= Phase.SLEEP_GRACE), phase
    assert isinstance(Owner.abort_event, AbortSignal)
