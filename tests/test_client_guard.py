"""The attribute guard: a name that looks like a client method is never taken for an action
(or an actor name); the AttributeError says where the method lives and how to call an action
of that name. Attribute access sends nothing, so no server is needed."""

from __future__ import annotations

import pytest

from rivetkit.client import Client, SyncClient
from rivetkit.client.guard import HABITS, client_members

ENDPOINT = "http://127.0.0.1:9"


@pytest.mark.asyncio
async def test_async_handle_and_connection() -> None:
    async with Client(ENDPOINT, disable_metadata_lookup=True) as client:
        handle = client.counter.get_or_create(["k"])
        for name in ("next_event", "on", "disconnect", "aclose", "dispose", "subscribe", "emit"):
            with pytest.raises(AttributeError) as info:
                getattr(handle, name)
            assert f"ActorHandle has no attribute {name!r}" in str(info.value)
            assert f'.action("{name}", ...)' in str(info.value)
        with pytest.raises(AttributeError, match=r"it is a member of ActorConnection"):
            _ = handle.next_event
        assert callable(handle.increment)  # anything else is still an action

        conn = handle.connect()
        try:
            with pytest.raises(AttributeError, match=r"member of .*ActorAccessor.*Client"):
                _ = conn.get_or_create
            with pytest.raises(AttributeError, match=r"member of ActorHandle"):
                _ = conn.fetch
            with pytest.raises(AttributeError, match="it is not a client method"):
                _ = conn.dispose
            assert callable(conn.increment)
        finally:
            await conn.close()


@pytest.mark.asyncio
async def test_client_and_accessor() -> None:
    async with Client(ENDPOINT, disable_metadata_lookup=True) as client:
        with pytest.raises(AttributeError) as info:
            _ = client.connect
        assert "Client has no attribute 'connect'" in str(info.value)
        assert 'client.get_or_create("connect", key)' in str(info.value)
        with pytest.raises(AttributeError, match="get a handle first"):
            _ = client.counter.increment
        with pytest.raises(AttributeError, match="member of"):
            _ = client.counter.connect


def test_sync_objects() -> None:
    with SyncClient(ENDPOINT, disable_metadata_lookup=True) as client:
        handle = client.counter.get_or_create(["k"])
        with pytest.raises(AttributeError, match=r"SyncActorHandle has no attribute 'on'"):
            _ = handle.on
        with pytest.raises(AttributeError, match=r"\.action\(\"aclose\", \.\.\.\)"):
            _ = handle.aclose
        with pytest.raises(AttributeError, match="SyncClient has no attribute 'send'"):
            _ = client.send
        assert callable(handle.increment)


def test_the_guarded_names() -> None:
    members = client_members()
    assert {"connect", "next_event", "on", "get_or_create", "fetch", "send", "call"} <= set(members)
    assert members["next_event"] == ("ActorConnection", "SyncActorConnection")
    assert {"close", "aclose", "dispose", "subscribe", "emit"} <= HABITS
    # Properties and everyday action verbs stay free for actions.
    assert not {"status", "name", "error", "get", "create", "start", "next"} & set(members)


@pytest.mark.asyncio
async def test_everyday_action_names_stay_actions() -> None:
    async with Client(ENDPOINT, disable_metadata_lookup=True) as client:
        handle = client.counter.get_or_create(["k"])
        for name in ("get", "start", "next", "status", "error"):
            assert callable(getattr(handle, name)), name


def test_sync_hints_for_async_only_members() -> None:
    with SyncClient(ENDPOINT, disable_metadata_lookup=True) as client:
        handle = client.counter.get(["k"])
        with pytest.raises(AttributeError, match="websocket is async only"):
            _ = handle.websocket
        with pytest.raises(AttributeError, match=r"close with close\(\)"):
            _ = client.aclose
