"""Action dispatch: both twins of ActionTable (``py`` pure, ``cy`` compiled), alone and in
the runtime, plus a differential test that they agree call for call."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rivetkit
from conftest import TWIN_IDS, twin
from rivetkit import RivetError, UserError, actor, setup
from rivetkit import _twins as twins
from rivetkit.runtime import _dispatch_py, action_calls, action_table
from rivetkit.testing import setup_test


@pytest.fixture(params=TWIN_IDS)
def dispatch_twin(request: pytest.FixtureRequest) -> ModuleType:
    """The dispatch twin under test: ``py`` (pure) or ``cy`` (compiled)."""
    return twin(request.param, "_dispatch", _dispatch_py)


def both_twins() -> list[ModuleType]:
    return [twin("py", "_dispatch", _dispatch_py), twin("cy", "_dispatch", _dispatch_py)]


@dataclasses.dataclass
class Point:
    x: int
    y: int


def make_definition() -> Any:
    a = actor("d", state={})

    @a.action
    def plain(c: Any, *args: Any) -> Any:
        return ["plain", c, list(args)]

    @a.action
    async def aplain(c: Any, *args: Any) -> Any:
        await asyncio.sleep(0)
        return ["aplain", c, list(args)]

    @a.action
    def typed(c: Any, n: int, label: str = "none") -> Any:
        return [n, label]

    @a.action
    async def atyped(c: Any, p: Point) -> Any:
        return p.x + p.y

    @a.action(name="getThing")
    def get_thing(c: Any) -> str:
        return "thing"

    @a.action
    def fails(c: Any, kind: str) -> None:
        if kind == "user":
            raise UserError("u", code="mine", metadata={"k": 1})
        raise ValueError(kind)

    @a.action
    def no_args(c: Any) -> int:
        return 0

    return a


def error_tuple(exc: BaseException) -> tuple[Any, ...]:
    if isinstance(exc, RivetError):
        return (type(exc).__name__, exc.group, exc.code, exc.message, exc.metadata)
    return (type(exc).__name__, str(exc))


def test_names_and_kinds(dispatch_twin: ModuleType) -> None:
    table = dispatch_twin.ActionTable(make_definition().actions)
    assert table.names() == ["plain", "aplain", "typed", "atyped", "getThing", "fails", "no_args"]
    assert table.is_async("aplain") is True
    assert table.is_async("atyped") is True
    assert table.is_async("plain") is False
    assert table.is_async("getThing") is False
    assert dispatch_twin.ActionTable({}).names() == []


def test_sync_call(dispatch_twin: ModuleType) -> None:
    table = dispatch_twin.ActionTable(make_definition().actions)
    ctx = object()
    assert table.call("plain", ctx, []) == ["plain", ctx, []]
    assert table.call("plain", ctx, [1, "a", None]) == ["plain", ctx, [1, "a", None]]
    assert table.call("typed", ctx, ["7"]) == [7, "none"]  # validated and converted
    assert table.call("typed", ctx, [7, "x"]) == [7, "x"]
    assert table.call("getThing", ctx, []) == "thing"


def test_async_call_returns_coroutine(dispatch_twin: ModuleType) -> None:
    table = dispatch_twin.ActionTable(make_definition().actions)
    ctx = object()
    coro = table.call("aplain", ctx, [1])
    assert inspect.iscoroutine(coro)
    assert asyncio.run(coro) == ["aplain", ctx, [1]]
    assert asyncio.run(table.call("atyped", ctx, [{"x": 1, "y": 2}])) == 3


def test_action_not_found(dispatch_twin: ModuleType) -> None:
    table = dispatch_twin.ActionTable(make_definition().actions)
    for call in (lambda: table.call("missing", None, []), lambda: table.is_async("missing")):
        with pytest.raises(RivetError) as info:
            call()
        assert (info.value.group, info.value.code) == ("actor", "action_not_found")
        assert info.value.metadata == {"name": "missing"}
        assert info.value.message == "Action 'missing' not found"


def test_validation_errors(dispatch_twin: ModuleType) -> None:
    table = dispatch_twin.ActionTable(make_definition().actions)
    with pytest.raises(RivetError) as info:
        table.call("typed", None, ["abc"])
    assert info.value.code == "validation_error"
    assert info.value.metadata["field"] == "n"
    # Validation errors of async actions are raised by call itself, before any coroutine.
    with pytest.raises(RivetError) as info:
        table.call("atyped", None, [{"x": 1}])
    assert info.value.code == "validation_error"
    assert info.value.metadata["field"] == "p.y"
    with pytest.raises(RivetError) as info:
        table.call("typed", None, [1, "a", "too many"])
    assert info.value.code == "validation_error"
    assert info.value.metadata["field"] is None


def test_action_exceptions_propagate(dispatch_twin: ModuleType) -> None:
    table = dispatch_twin.ActionTable(make_definition().actions)
    with pytest.raises(UserError) as info:
        table.call("fails", None, ["user"])
    assert (info.value.code, info.value.metadata) == ("mine", {"k": 1})
    with pytest.raises(ValueError, match="boom"):
        table.call("fails", None, ["boom"])


def test_selected_twin_matches_environment() -> None:
    compiled = action_table.ActionTable.__module__ == "rivetkit._speedups._dispatch"
    if twins.PURE_FORCED:
        assert action_table.ActionTable is _dispatch_py.ActionTable
    elif twins.SPEEDUPS_REQUIRED:
        assert compiled
    assert action_calls.ActionTable is action_table.ActionTable
    assert twins.compiled["_dispatch"] is compiled
    if compiled:
        assert rivetkit.SPEEDUPS is twins.speedups_active()


# -- in the runtime ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_twin_in_the_runtime(
    dispatch_twin: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(action_calls, "ActionTable", dispatch_twin.ActionTable)
    a = actor("t", state={"n": 0})

    @a.action
    def inc(c: Any, by: int = 1) -> int:
        c.state["n"] += by
        return c.state["n"]

    @a.action
    async def ainc(c: Any, by: int = 1) -> int:
        await asyncio.sleep(0)
        c.state["n"] += by
        return c.state["n"]

    async with setup_test(setup(use=[a])) as client:
        handle = client.t.get_or_create()
        actor_id = await handle.resolve()
        live = await client.runtime.instance(actor_id)
        assert type(live.table) is dispatch_twin.ActionTable
        assert await handle.inc() == 1
        assert await handle.inc(2) == 3
        assert await handle.ainc(3) == 6
        assert await handle.ainc() == 7
        with pytest.raises(RivetError) as info:
            await handle.nope()
        assert info.value.code == "action_not_found"
        with pytest.raises(RivetError) as info:
            await handle.ainc("x")
        assert info.value.code == "validation_error"


# -- differential ------------------------------------------------------------------------------

NAMES = ["plain", "aplain", "typed", "atyped", "getThing", "fails", "no_args", "missing", ""]
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("xyz"), inner),
    max_leaves=6,
)


def outcome(table: Any, name: str, args: list[Any]) -> tuple[Any, ...]:
    ctx = "ctx"
    try:
        result = table.call(name, ctx, list(args))
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
    except Exception as exc:
        return ("error", *error_tuple(exc))
    return ("ok", result)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(NAMES), args=st.lists(VALUES, max_size=3))
def test_twins_agree(name: str, args: list[Any]) -> None:
    definition = make_definition()
    py, cy = (module.ActionTable(definition.actions) for module in both_twins())
    assert outcome(py, name, args) == outcome(cy, name, args)
    try:
        kind = ("ok", py.is_async(name))
    except RivetError as exc:
        kind = ("error", *error_tuple(exc))
    try:
        assert kind == ("ok", cy.is_async(name))
    except RivetError as exc:
        assert kind == ("error", *error_tuple(exc))
