"""A broadcast hands all its subscribers' transports to one ``send_event_to_all`` call.

``ActorConns.broadcast`` gives the whole list to the first transport's class when it has a
``send_event_to_all``; ``ConnSession.send_event_to_all`` does its sessions' common case inline
and everything else through each transport's own ``send_event``. Here: every subscriber gets
the event once, with the one shared ``args`` list; and the batch leaves exactly what
``send_event`` one by one leaves (frames per encoding, queued frames, hibernation message
indexes, closing sessions, other transports, frames over the size limit).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from rivetkit import ActorOptions, actor, setup
from rivetkit.dispatch.connect import ConnSession
from rivetkit.protocol.client_protocol import Event, ToClient
from rivetkit.protocol.messages import encode_to_client
from rivetkit.runtime.connection import Hibernation
from rivetkit.runtime.instance import ActorInstance
from rivetkit.testing import setup_test

pytestmark = pytest.mark.asyncio

hall = actor("hall", state={}, options=ActorOptions(max_outgoing_message_size=200))


@hall.action
def shout(c: Any, event: str, *args: Any) -> None:
    """Broadcast ``event`` with ``args``."""
    c.broadcast(event, *args)


registry = setup(use=[hall])


class Plain:
    """A transport without a batch: records its events."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def send_event(self, name: str, args: list[Any]) -> None:
        self.log.append((self, name, args))

    def close(self, reason: str | None) -> None:
        pass


class Batched(Plain):
    """A transport whose class takes a broadcast's transports at once."""

    batches: ClassVar[list[list[Any]]] = []

    @staticmethod
    def send_event_to_all(transports: list[Any], name: str, args: list[Any]) -> None:
        Batched.batches.append(list(transports))
        for transport in transports:
            transport.send_event(name, args)


async def instance_of(client: Any) -> ActorInstance:
    actor_id = await client.get_or_create("hall", "h").resolve()
    return await client.runtime.instance(actor_id)  # type: ignore[no-any-return]


async def test_the_first_transports_class_takes_them_all() -> None:
    async with setup_test(registry) as client:
        instance = await instance_of(client)
        log: list[Any] = []
        Batched.batches.clear()
        transports = [Batched(log), Plain(log), Batched(log), Plain(log)]
        for i, transport in enumerate(transports):
            conn = await instance.connect(None, transport=transport)
            if i != 3:
                conn.subscribe("e")
        await instance.invoke("shout", ["e", 1, "two"])
        assert [entry[0] for entry in log] == transports[:3]
        assert all(entry[1:] == ("e", [1, "two"]) for entry in log)
        assert log[0][2] is log[1][2] is log[2][2]  # one list for all
        assert Batched.batches == [transports[:3]]
        # The first one without a batch: each its own send_event.
        log.clear()
        for conn in instance.conns.values():
            if conn.transport is transports[0]:
                conn.unsubscribe("e")
        await instance.invoke("shout", ["e", 3])
        assert [entry[0] for entry in log] == transports[1:3]
        assert Batched.batches == [transports[:3]]
        await instance.invoke("shout", ["nobody", 4])
        assert len(log) == 2


class FakeSocket:
    """A socket whose ``send_nowait`` takes frames while ``ready`` (else False: queued)."""

    def __init__(self, ready: bool = True) -> None:
        self.ready = ready
        self.now: list[Any] = []
        self.later: list[Any] = []

    def send_nowait(self, data: Any) -> bool:
        if self.ready:
            self.now.append(data)
        return self.ready

    async def send(self, data: Any) -> None:
        self.later.append(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        pass


def sessions(instance: ActorInstance, log: list[Any]) -> list[Any]:
    """json, cbor, hibernatable json, not ready json, closing cbor, another transport,
    hibernatable cbor: each a fresh set."""
    made: list[Any] = []
    for encoding, ready, hibernates, closing in (
        ("json", True, False, False),
        ("cbor", True, False, False),
        ("json", True, True, False),
        ("json", False, False, False),
        ("cbor", True, False, True),
        (None, True, False, False),
        ("cbor", True, True, False),
    ):
        if encoding is None:
            made.append(Plain(log))
            continue
        session = ConnSession(instance, FakeSocket(ready), encoding)  # type: ignore[arg-type]
        if hibernates:
            session._hibernation = Hibernation(b"gate", b"req1", client_message_index=65535)
        if closing:
            session.close("bye")
        made.append(session)
    return made


def outcome(made: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in made:
        if isinstance(item, Plain):
            continue
        info = item._hibernation
        seen.append(
            (
                item._ws.now,
                item._ws.later,
                list(item._out or ()),
                None if info is None else info.client_message_index,
            )
        )
    return seen


async def test_the_batch_leaves_what_send_event_leaves() -> None:
    async with setup_test(registry) as client:
        instance = await instance_of(client)
        for args in ([1, "é✓"], ["x" * 300], [{"n": 2}]):
            log_one: list[Any] = []
            log_all: list[Any] = []
            one, batch = sessions(instance, log_one), sessions(instance, log_all)
            for transport in one:
                transport.send_event("e", args)
            ConnSession.send_event_to_all(batch, "e", args)
            await asyncio.sleep(0)  # the writers of the queued ones
            await asyncio.sleep(0)
            assert outcome(batch) == outcome(one)
            assert [entry[1:] for entry in log_all] == [("e", args)]
            if args[0] != "x" * 300:  # over max_outgoing_message_size: dropped
                frames = {
                    e: encode_to_client(ToClient(Event("e", args)), e) for e in ("json", "cbor")
                }
                assert outcome(batch)[0][0] == [frames["json"]]
                assert outcome(batch)[1][0] == [frames["cbor"]]
                assert outcome(batch)[2][3] == 0  # counted (wraps at 16 bits)
                assert outcome(batch)[3][1] == [frames["json"]]  # through the writer
            assert outcome(batch)[4][:3] == ([], [], [])  # closing: nothing
            for transport in one + batch:
                if isinstance(transport, ConnSession) and transport._writer is not None:
                    transport._writer.cancel()
