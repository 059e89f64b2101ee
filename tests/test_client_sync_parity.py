"""The blocking client mirrors the async one: every public method and property of ``Client``,
``ActorHandle``, ``ActorConnection`` and ``ActorAccessor`` has a counterpart of the same name
and parameters on its ``Sync*`` face (a new async member without one fails here)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from rivetkit.client import (
    ActorConnection,
    ActorHandle,
    Client,
    SyncActorConnection,
    SyncActorHandle,
    SyncClient,
)
from rivetkit.client.client import ActorAccessor
from rivetkit.client.sync import SyncActorAccessor

PAIRS = [
    (Client, SyncClient),
    (ActorHandle, SyncActorHandle),
    (ActorConnection, SyncActorConnection),
    (ActorAccessor, SyncActorAccessor),
]

# Async-only members: ``aclose`` is the httpx habit of async code (the blocking faces have
# ``close``); ``websocket`` returns an asyncio websockets connection.
ASYNC_ONLY = {"aclose", "websocket"}

# Async protocol members and their blocking counterparts.
DUNDERS = {"__aenter__": "__enter__", "__aexit__": "__exit__", "__repr__": "__repr__"}


def public_names(cls: type) -> list[str]:
    return sorted(name for name in dir(cls) if not name.startswith("_") and name not in ASYNC_ONLY)


def parameters(fn: Any) -> list[tuple[str, Any, Any, Any]]:
    """The parameters of ``fn`` after ``self``: name, kind, default, annotation."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    return [(p.name, p.kind, p.default, p.annotation) for p in params]


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=lambda cls: cls.__name__)
def test_every_public_member_has_a_sync_counterpart(async_cls: type, sync_cls: type) -> None:
    assert public_names(async_cls), "nothing to compare"
    missing = [
        name
        for name in public_names(async_cls)
        if name not in {n for klass in sync_cls.__mro__ for n in vars(klass)}
    ]
    assert missing == [], f"{sync_cls.__name__} lacks {missing}"


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=lambda cls: cls.__name__)
def test_counterparts_have_the_same_kind_and_parameters(async_cls: type, sync_cls: type) -> None:
    for name in public_names(async_cls):
        async_member = inspect.getattr_static(async_cls, name)
        sync_member = inspect.getattr_static(sync_cls, name, None)
        assert sync_member is not None, f"{sync_cls.__name__} lacks {name}"
        if isinstance(async_member, property):
            assert inspect.isdatadescriptor(sync_member), f"{sync_cls.__name__}.{name}"
            assert not callable(sync_member), f"{sync_cls.__name__}.{name} is not a property"
            continue
        assert callable(sync_member), f"{sync_cls.__name__}.{name}"
        assert not inspect.iscoroutinefunction(sync_member), f"{sync_cls.__name__}.{name}"
        assert parameters(sync_member) == parameters(async_member), f"{sync_cls.__name__}.{name}"
        assert sync_member.__doc__, f"{sync_cls.__name__}.{name} has no docstring"


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=lambda cls: cls.__name__)
def test_protocol_members_have_blocking_counterparts(async_cls: type, sync_cls: type) -> None:
    for async_name, sync_name in DUNDERS.items():
        if async_name in vars(async_cls):
            assert sync_name in vars(sync_cls), f"{sync_cls.__name__}.{sync_name}"


def test_constructor_takes_the_async_options() -> None:
    async_params = list(inspect.signature(Client).parameters.values())
    sync_params = list(inspect.signature(SyncClient).parameters.values())
    timeout = [p for p in sync_params if p.name == "timeout"]
    assert len(timeout) == 1 and timeout[0].default is None
    assert sync_params == async_params
