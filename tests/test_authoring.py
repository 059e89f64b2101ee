"""The authoring API: actor definitions, options, argument validation and the registry."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib.util
import json
import math
import threading
from pathlib import Path
from typing import Any

import pydantic
import pytest
from typing_extensions import TypedDict

import rivetkit
from rivetkit import (
    ActorDefinition,
    ActorOptions,
    Registry,
    RivetError,
    UserError,
    actor,
    setup,
)
from rivetkit.actor import HOOK_NAMES, UNSET, ActionSpec, Hook
from rivetkit.validation import build_action_validator, build_validator, is_async_callable

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def define(name: str, **kwargs: Any) -> ActorDefinition:
    """actor() with keywords chosen at run time."""
    return actor(name, **kwargs)


def options(**kwargs: Any) -> ActorOptions:
    """ActorOptions() with keywords chosen at run time."""
    return ActorOptions(**kwargs)


def validation_failure(validate: Any, value: Any) -> RivetError:
    with pytest.raises(RivetError) as info:
        validate(value)
    err = info.value
    assert (err.group, err.code) == ("actor", "validation_error")
    json.dumps(err.metadata)  # metadata must travel as JSON
    return err


# -- module-level types: string annotations resolve against module globals -----------------


class Point(pydantic.BaseModel):
    x: int
    y: int


class User(pydantic.BaseModel):
    name: str
    age: int


class Team(pydantic.BaseModel):
    members: list[User]


@dataclasses.dataclass
class Item:
    sku: str
    qty: int = 1


class Movie(TypedDict):
    title: str
    year: int


class NotValidatable:
    pass


# -- the DESIGN.md §4 counter -----------------------------------------------------------


def test_counter_example_defines() -> None:
    module = load_example("counter")
    registry = module.registry
    assert isinstance(registry, Registry)
    counter = registry.get("counter")
    assert counter is module.counter
    assert counter.name == "counter"
    assert counter.state_value == {"count": 0}
    assert counter.has_state and not counter.has_vars and not counter.has_conn_state
    assert counter.options == ActorOptions()
    assert list(counter.actions) == ["increment", "getCount"]

    increment = counter.actions["increment"]
    assert isinstance(increment, ActionSpec)
    assert increment.name == "increment"
    assert increment.fn is module.increment  # the decorator returns the function unchanged
    assert increment.is_async
    assert increment.validate is not None
    assert increment.validate([5]) == [5]
    assert increment.validate([]) == []

    get_count = counter.actions["getCount"]
    assert get_count.fn is module.get_count
    assert not get_count.is_async
    assert get_count.validate is None


def test_counter_functions_stay_callable() -> None:
    module = load_example("counter")
    sent: list[tuple[str, Any]] = []

    class Ctx:
        def __init__(self) -> None:
            self.state: dict[str, Any] = {"count": 1}

        def broadcast(self, name: str, *args: Any) -> None:
            sent.append((name, args))

    c = Ctx()
    assert asyncio.run(module.increment(c, 2)) == 3
    assert module.get_count(c) == 3
    assert sent == [("newCount", (3,))]
    with pytest.raises(UserError) as info:
        asyncio.run(module.increment(c, -1))
    assert (info.value.group, info.value.code) == ("user", "negative_amount")


def test_exports() -> None:
    for name in (
        "actor",
        "setup",
        "ActorOptions",
        "UserError",
        "RivetError",
        "Registry",
        "ActorDefinition",
        "SPEEDUPS",
    ):
        assert name in rivetkit.__all__
        assert hasattr(rivetkit, name)
    from rivetkit.actor import UserError as ReExported

    assert ReExported is UserError


# -- actor(): names, constants, factories -------------------------------------------------


@pytest.mark.parametrize("name", ["counter", "a", "Chat-Room_1.v2", "9lives", "x" * 128])
def test_valid_actor_names(name: str) -> None:
    assert actor(name).name == name


@pytest.mark.parametrize(
    "name", ["", "-x", ".x", "..", "_x", "has space", "a/b", "é", "x" * 129, "a\n"]
)
def test_invalid_actor_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid actor name"):
        actor(name)


def test_actor_name_must_be_str() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        actor(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("constant", "factory"),
    [("state", "create_state"), ("vars", "create_vars"), ("conn_state", "create_conn_state")],
)
def test_constant_and_factory_are_exclusive(constant: str, factory: str) -> None:
    def make(c: Any, arg: Any = None) -> dict[str, int]:
        return {}

    with pytest.raises(TypeError) as info:
        define("a", **{constant: {}, factory: make})
    assert repr(constant) in str(info.value) and repr(factory) in str(info.value)

    defn = define("a", **{constant: {}})
    with pytest.raises(TypeError) as info:
        getattr(defn, factory)(make)
    assert repr(constant) in str(info.value) and repr(factory) in str(info.value)


def test_factories_by_keyword_and_decorator() -> None:
    def create_state(c: Any, input: Any) -> dict[str, Any]:
        return {"input": input}

    async def create_vars(c: Any) -> dict[str, Any]:
        return {}

    defn = actor("a", create_state=create_state, create_vars=create_vars)
    assert defn.state_value is UNSET
    assert defn.hooks.create_state == Hook("create_state", create_state, False)
    assert defn.hooks.create_vars == Hook("create_vars", create_vars, True)
    assert defn.has_state and defn.has_vars and not defn.has_conn_state

    @defn.create_conn_state
    def conn_state(c: Any, params: Any) -> dict[str, Any]:
        return {"params": params}

    assert defn.hooks.create_conn_state is not None
    assert defn.hooks.create_conn_state.fn is conn_state
    assert defn.has_conn_state


def test_no_state() -> None:
    defn = actor("a")
    assert defn.state_value is UNSET and defn.vars_value is UNSET
    assert defn.conn_state_value is UNSET
    assert not defn.has_state
    assert defn.new_state_value() is None
    assert actor("a", state=None).has_state


def test_constant_state_is_deep_copied() -> None:
    initial = {"count": 0, "items": [{"tags": ["a"]}], "blob": b"\x00"}
    defn = actor("a", state=initial, conn_state={"seen": []}, vars={"cache": {}})
    initial["items"][0]["tags"].append("changed by the caller")  # type: ignore[index]

    first = defn.new_state_value()
    second = defn.new_state_value()
    assert first == {"count": 0, "items": [{"tags": ["a"]}], "blob": b"\x00"}
    first["items"][0]["tags"].append("b")
    first["count"] = 5
    assert second == {"count": 0, "items": [{"tags": ["a"]}], "blob": b"\x00"}
    assert defn.new_state_value() == second

    conn = defn.new_conn_state_value()
    conn["seen"].append(1)
    assert defn.new_conn_state_value() == {"seen": []}
    v = defn.new_vars_value()
    v["cache"]["k"] = 1
    assert defn.new_vars_value() == {"cache": {}}


@pytest.mark.parametrize(
    ("state", "culprit"),
    [
        ({1, 2}, "state is not CBOR-encodable: set"),
        ((1, 2), "state is not CBOR-encodable: tuple"),
        ({"a": [1, object()]}, "state['a'][1] is not CBOR-encodable: object"),
        ({"when": NotValidatable()}, "state['when'] is not CBOR-encodable: NotValidatable"),
        ({(1, 2): "x"}, "state has a key of type tuple"),
    ],
)
def test_state_must_be_cbor(state: Any, culprit: str) -> None:
    with pytest.raises(TypeError) as info:
        actor("a", state=state)
    assert culprit in str(info.value)


def test_state_cycle_is_refused() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(TypeError, match="reference cycle"):
        actor("a", state={"loop": cyclic})
    shared = [1]
    actor("a", state={"x": shared, "y": shared})  # shared, not cyclic: fine


def test_state_scalars_accepted() -> None:
    state: dict[Any, Any] = {
        "n": None,
        "b": True,
        "i": -(2**70),
        "f": math.inf,
        "s": "é",
        "y": b"",
        1: [[]],
    }
    assert actor("a", state=state).new_state_value() == state


def test_conn_state_must_be_cbor() -> None:
    with pytest.raises(TypeError, match=r"conn_state\['x'\] is not CBOR-encodable"):
        actor("a", conn_state={"x": {1}})


def test_vars_must_be_deep_copyable() -> None:
    with pytest.raises(TypeError, match="vars cannot be deep-copied"):
        actor("a", vars={"lock": threading.Lock()})
    assert actor("a", vars={"s": {1, 2}}).new_vars_value() == {"s": {1, 2}}


def test_options_must_be_actor_options() -> None:
    with pytest.raises(TypeError, match="options must be an ActorOptions"):
        actor("a", options={"sleep_timeout": 1.0})  # type: ignore[arg-type]
    opts = ActorOptions(sleep_timeout=1.0)
    assert actor("a", options=opts).options is opts


# -- hooks ----------------------------------------------------------------------------------


HOOK_ARITY = {
    "on_create": 2,
    "on_wake": 1,
    "on_sleep": 1,
    "on_destroy": 1,
    "on_migrate": 2,
    "on_before_connect": 2,
    "on_connect": 2,
    "on_disconnect": 2,
    "on_state_change": 2,
    "on_request": 2,
    "on_websocket": 2,
    "on_before_action_response": 4,
    "create_state": 2,
    "create_vars": 1,
    "create_conn_state": 2,
    "run": 1,
}


def test_hook_names_match_design() -> None:
    assert set(HOOK_ARITY) == HOOK_NAMES


@pytest.mark.parametrize("hook", sorted(HOOK_ARITY))
def test_every_hook_decorator(hook: str) -> None:
    def fn(*args: Any) -> None:
        return None

    defn = actor("a")
    assert getattr(defn, hook)(fn) is fn
    entry = getattr(defn.hooks, hook)
    assert entry == Hook(hook, fn, False)

    with pytest.raises(TypeError, match="already set"):
        getattr(defn, hook)(fn)


@pytest.mark.parametrize("hook", sorted(HOOK_ARITY))
def test_every_hook_by_keyword(hook: str) -> None:
    params = ", ".join(f"a{i}" for i in range(HOOK_ARITY[hook]))
    namespace: dict[str, Any] = {}
    exec(f"async def fn({params}): pass", namespace)
    fn = namespace["fn"]
    if hook == "on_state_change":
        with pytest.raises(TypeError, match="must be a synchronous function"):
            define("a", **{hook: fn})
        return
    defn = define("a", **{hook: fn})
    assert getattr(defn.hooks, hook) == Hook(hook, fn, True)


@pytest.mark.parametrize("hook", sorted(HOOK_ARITY))
def test_hook_arity_is_checked(hook: str) -> None:
    too_many = ", ".join(f"a{i}" for i in range(HOOK_ARITY[hook] + 1))
    namespace: dict[str, Any] = {}
    exec(f"def fn({too_many}): pass", namespace)
    with pytest.raises(TypeError, match=f"hook '{hook}': must accept {HOOK_ARITY[hook]}"):
        define("a", **{hook: namespace["fn"]})
    if HOOK_ARITY[hook] > 1:
        with pytest.raises(TypeError, match=f"hook '{hook}'"):
            define("a", **{hook: lambda c: None})


def test_hook_with_defaults_or_varargs_is_fine() -> None:
    defn = actor("a", on_create=lambda c, input=None, extra=1: None, on_wake=lambda *a: None)
    assert defn.hooks.on_create is not None and defn.hooks.on_wake is not None


def test_non_callable_hook() -> None:
    with pytest.raises(TypeError, match="hook 'on_wake': must be callable"):
        actor("a", on_wake=42)  # type: ignore[arg-type]
    defn = actor("a")
    with pytest.raises(TypeError, match="hook 'run': must be callable"):
        defn.run("not a function")  # type: ignore[type-var]


def test_unknown_hook_keyword() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'on_wakeup'"):
        actor("a", on_wakeup=lambda c: None)
    with pytest.raises(TypeError, match="unknown hook"):
        actor("a").set_hook("on_start", lambda c: None)


def test_hook_set_by_keyword_then_decorator() -> None:
    defn = actor("a", on_wake=lambda c: None)
    with pytest.raises(TypeError, match="hook 'on_wake': already set"):

        @defn.on_wake
        def again(c: Any) -> None:
            pass


# -- sync/async detection ------------------------------------------------------------------


class AsyncCallable:
    async def __call__(self, c: Any, x: int) -> int:
        return x


class SyncCallable:
    def __call__(self, c: Any, x: int) -> int:
        return x


class Methods:
    async def am(self, c: Any) -> None:
        pass

    def sm(self, c: Any) -> None:
        pass


async def async_fn(c: Any, x: int = 0) -> int:
    return x


def sync_fn(c: Any, x: int = 0) -> int:
    return x


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (async_fn, True),
        (sync_fn, False),
        (functools.partial(async_fn), True),
        (functools.partial(functools.partial(async_fn)), True),
        (functools.partial(sync_fn), False),
        (AsyncCallable(), True),
        (SyncCallable(), False),
        (functools.partial(AsyncCallable()), True),
        (Methods().am, True),
        (Methods().sm, False),
        (lambda c: None, False),
        (print, False),
        (AsyncCallable, False),  # calling the class makes an instance, not a coroutine
    ],
)
def test_is_async_callable(fn: Any, expected: bool) -> None:
    assert is_async_callable(fn) is expected


def test_actions_of_every_callable_kind() -> None:
    defn = actor("a")
    defn.add_action(functools.partial(async_fn), name="partial")
    defn.add_action(AsyncCallable(), name="obj")
    defn.add_action(Methods().am, name="method")
    assert [s.is_async for s in defn.actions.values()] == [True, True, True]
    obj = defn.actions["obj"]
    assert obj.validate is not None
    assert obj.validate([3]) == [3]
    validation_failure(obj.validate, ["x"])


# -- actions --------------------------------------------------------------------------------


def test_action_decorator_forms() -> None:
    defn = actor("a")

    @defn.action
    def plain(c: Any) -> None:
        pass

    @defn.action()
    def called(c: Any) -> None:
        pass

    @defn.action(name="getThing")
    async def get_thing(c: Any) -> None:
        pass

    assert list(defn.actions) == ["plain", "called", "getThing"]
    assert defn.actions["getThing"].fn is get_thing
    assert callable(plain) and callable(called)


def test_actions_by_keyword() -> None:
    defn = actor("a", actions={"getCount": sync_fn, "add": async_fn})
    assert list(defn.actions) == ["getCount", "add"]
    assert defn.actions["add"].is_async


def test_duplicate_action_wire_name() -> None:
    defn = actor("a")

    @defn.action(name="get")
    def one(c: Any) -> None:
        pass

    with pytest.raises(ValueError, match="action 'get' is already defined"):

        @defn.action(name="get")
        def two(c: Any) -> None:
            pass

    defn.action(sync_fn)
    with pytest.raises(ValueError, match="action 'sync_fn' is already defined"):
        defn.action(name="sync_fn")(async_fn)
    assert defn.actions["get"].fn is one


@pytest.mark.parametrize("name", [5, b"get", ["x"]])
def test_action_name_must_be_str(name: Any) -> None:
    with pytest.raises(TypeError, match="action name must be a str"):
        actor("a").action(name=name)(sync_fn)


def test_action_name_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        actor("a").action(name="")(sync_fn)


def test_action_must_be_callable() -> None:
    with pytest.raises(TypeError, match="an action must be callable"):
        actor("a").action(42)  # type: ignore[call-overload]


def test_action_without_a_name_needs_one() -> None:
    obj = SyncCallable()
    with pytest.raises(TypeError, match="has no __name__"):
        actor("a").action(obj)
    assert actor("a").action(name="obj")(obj) is obj


def test_action_must_take_the_context() -> None:
    with pytest.raises(TypeError, match="action 'f': must take the context"):

        @actor("a").action
        def f() -> None:
            pass

    with pytest.raises(TypeError, match="must take the context"):
        actor("a").add_action(lambda *, c: None, name="kw")


def test_action_keyword_only_needs_default() -> None:
    with pytest.raises(TypeError, match="keyword-only parameter 'flag' needs a default"):
        actor("a").add_action(lambda c, *, flag: None, name="f")
    spec = actor("a").add_action(lambda c, *, flag=False: None, name="f")
    assert spec.validate is None


def test_action_with_unvalidatable_annotation() -> None:
    def f(c: Any, thing: NotValidatable) -> None:
        pass

    with pytest.raises(TypeError) as info:
        actor("a").action(f)
    assert "action 'f'" in str(info.value) and "parameter 'thing'" in str(info.value)


# -- validation -----------------------------------------------------------------------------


def test_unannotated_actions_get_no_validator() -> None:
    def f(c, a, b=1, *rest, **kw):  # type: ignore[no-untyped-def]
        pass

    def g(c: Any, a: Any, b: object) -> None:
        pass

    assert build_action_validator(f) is None
    assert build_action_validator(g) is None
    assert build_action_validator(lambda c: None) is None
    assert build_action_validator(print) is None  # no introspectable signature


def test_int_fast_path() -> None:
    def f(c: Any, n: int) -> None:
        pass

    validate = build_action_validator(f)
    assert validate is not None
    args = [5]
    out = validate(args)
    assert out == [5] and out is not args
    big = 2**100
    assert validate([big])[0] is big
    assert validate(["7"]) == [7]  # pydantic converts what it can

    err = validation_failure(validate, ["x"])
    assert err.metadata["field"] == "n"
    assert err.metadata["errors"][0]["type"] == "int_parsing"
    assert err.metadata["errors"][0]["loc"] == ["n"]
    assert "n:" in err.message

    for not_an_int in (True, False, 1.5, None, [1]):
        assert validation_failure(validate, [not_an_int]).metadata["field"] == "n"


def test_scalar_fast_paths() -> None:
    def f(c: Any, x: float, s: str, b: bool, y: bytes) -> None:
        pass

    validate = build_action_validator(f)
    assert validate is not None
    out = validate([1, "s", True, b"\x01"])
    assert out == [1.0, "s", True, b"\x01"] and type(out[0]) is float
    assert validate([2.5, "s", False, b""])[0] == 2.5
    assert validation_failure(validate, [True, "s", True, b""]).metadata["field"] == "x"
    assert validation_failure(validate, [1.0, 5, True, b""]).metadata["field"] == "s"
    assert validation_failure(validate, [1.0, "s", "maybe", b""]).metadata["field"] == "b"
    assert validation_failure(validate, [1.0, "s", True, 5]).metadata["field"] == "y"
    assert validation_failure(validate, [10**400, "s", True, b""]).metadata["field"] == "x"


def test_pydantic_model_converted_from_dict() -> None:
    def move(c: Any, to: Point) -> Point:
        return to

    validate = build_action_validator(move)
    assert validate is not None
    (point,) = validate([{"x": 1, "y": "2"}])
    assert point == Point(x=1, y=2)
    assert validate([point])[0] == point

    err = validation_failure(validate, [{"x": 1}])
    assert err.metadata["field"] == "to.y"
    assert err.metadata["errors"] == [
        {"type": "missing", "loc": ["to", "y"], "msg": "Field required"}
    ]


def test_nested_error_path() -> None:
    def add_team(c: Any, team: Team) -> None:
        pass

    validate = build_action_validator(add_team)
    assert validate is not None
    err = validation_failure(validate, [{"members": [{"name": "a", "age": 1}, {"name": "b"}]}])
    assert err.metadata["field"] == "team.members.1.age"
    assert err.metadata["errors"][0]["loc"] == ["team", "members", 1, "age"]


def test_dataclass_argument() -> None:
    def buy(c: Any, item: Item) -> None:
        pass

    validate = build_action_validator(buy)
    assert validate is not None
    assert validate([{"sku": "a"}]) == [Item(sku="a", qty=1)]
    assert validation_failure(validate, [{"sku": "a", "qty": "many"}]).metadata["field"] == (
        "item.qty"
    )


def test_typeddict_argument() -> None:
    def rate(c: Any, movie: Movie, stars: int) -> None:
        pass

    validate = build_action_validator(rate)
    assert validate is not None
    assert validate([{"title": "Heat", "year": "1995"}, 5]) == [
        {"title": "Heat", "year": 1995},
        5,
    ]
    assert validation_failure(validate, [{"title": "Heat"}, 5]).metadata["field"] == "movie.year"


def test_generic_annotations() -> None:
    def f(c: Any, tags: list[str], limit: int | None = None) -> None:
        pass

    validate = build_action_validator(f)
    assert validate is not None
    assert validate([["a"], None]) == [["a"], None]
    assert validation_failure(validate, [["a", 1]]).metadata["field"] == "tags.1"


def test_mixed_annotated_and_not() -> None:
    marker = object()

    def f(c, raw, n: int, anything: Any, obj: object):  # type: ignore[no-untyped-def]
        pass

    validate = build_action_validator(f)
    assert validate is not None
    out = validate([marker, 3, marker, marker])
    assert out[0] is marker and out[2] is marker and out[3] is marker
    assert validation_failure(validate, [marker, "x", marker, marker]).metadata["field"] == "n"


def test_defaults_and_missing_arguments() -> None:
    def f(c: Any, a: int, b: int = 2, c2: str = "x") -> tuple[int, int, str]:
        return (a, b, c2)

    validate = build_action_validator(f)
    assert validate is not None
    args = validate([1])
    assert args == [1]
    assert f(None, *args) == (1, 2, "x")
    assert f(None, *validate([1, "5"])) == (1, 5, "x")

    err = validation_failure(validate, [])
    assert err.metadata["field"] == "a"
    assert err.metadata["errors"][0]["type"] == "missing_argument"


def test_too_many_arguments() -> None:
    def f(c: Any, a: int) -> None:
        pass

    validate = build_action_validator(f)
    assert validate is not None
    err = validation_failure(validate, [1, 2, 3])
    assert "at most 1 argument, got 3" in err.message
    assert err.metadata["field"] is None
    assert err.metadata["errors"][0]["type"] == "too_many_arguments"


def test_var_positional_passes_through() -> None:
    def f(c: Any, a: int, *rest: int, **kw: Any) -> None:
        pass

    validate = build_action_validator(f)
    assert validate is not None
    assert validate([1, "not checked", None]) == [1, "not checked", None]
    validation_failure(validate, ["x", 1])


def test_forward_reference_resolves_on_first_call() -> None:
    namespace: dict[str, Any] = {"__name__": "later"}
    exec(
        "from __future__ import annotations\ndef f(c, p: Later) -> None: pass\n",
        namespace,
    )
    validate = build_action_validator(namespace["f"])
    assert validate is not None  # deferred: Later is not defined yet
    exec(
        "import pydantic\nclass Later(pydantic.BaseModel):\n    v: int\n",
        namespace,
    )
    (value,) = validate([{"v": "3"}])
    assert type(value).__name__ == "Later" and value.v == 3
    validation_failure(validate, [{"v": "x"}])


def test_unresolvable_forward_reference_fails_at_first_call() -> None:
    namespace: dict[str, Any] = {}
    exec("from __future__ import annotations\ndef f(c, p: Nowhere) -> None: pass\n", namespace)
    validate = build_action_validator(namespace["f"], label="action 'f'")
    assert validate is not None
    with pytest.raises(TypeError, match="action 'f': cannot resolve type hints"):
        validate([1])


def test_build_validator_single_values() -> None:
    to_point = build_validator(Point, field="body")
    assert to_point({"x": 1, "y": 2}) == Point(x=1, y=2)
    err = validation_failure(to_point, {"x": 1})
    assert err.metadata["field"] == "body.y"

    bare = build_validator(list[int])
    assert bare(["1", 2]) == [1, 2]
    err = validation_failure(bare, "nope")
    assert err.metadata["field"] is None
    assert validation_failure(bare, [1, "x"]).metadata["field"] == "1"

    assert build_validator(int)(5) == 5
    assert validation_failure(build_validator(int, field="n"), True).metadata["field"] == "n"

    marker = object()
    assert build_validator(Any)(marker) is marker
    assert build_validator(object)(marker) is marker

    with pytest.raises(TypeError, match="cannot validate values of type"):
        build_validator(NotValidatable)


def test_validation_errors_are_public() -> None:
    from rivetkit.errors import http_status, is_public

    assert is_public("actor", "validation_error")
    assert http_status("actor", "validation_error") == 400


# -- options --------------------------------------------------------------------------------


def test_option_defaults() -> None:
    o = ActorOptions()
    assert o.state_save_interval == 1.0
    assert o.action_timeout == 60.0
    assert o.create_vars_timeout == 5.0
    assert o.create_conn_state_timeout == 5.0
    assert o.on_before_connect_timeout == 5.0
    assert o.on_connect_timeout == 5.0
    assert o.on_migrate_timeout == 30.0
    assert o.sleep_timeout == 30.0
    assert o.sleep_grace_period == 15.0
    assert o.no_sleep is False
    assert o.max_queue_size == 1000
    assert o.max_queue_message_size == 65536
    assert o.max_schedules == 1000
    assert o.max_incoming_message_size == 65536
    assert o.max_outgoing_message_size == 1048576
    assert o.connection_liveness_timeout == 2.5
    assert o.connection_liveness_interval == 5.0
    assert o.can_hibernate_websocket is False
    assert o.on_sleep_timeout is None
    assert o.on_destroy_timeout is None
    assert o.wait_until_timeout is None
    assert o.serial is False
    assert o.durable_replies is False
    assert o.effective_sleep_grace_period == 15.0


def test_options_are_frozen_and_keyword_only() -> None:
    o = ActorOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.sleep_timeout = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        ActorOptions(1.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ActorOptions(sleepTimeout=1.0)  # type: ignore[call-arg]
    assert ActorOptions(sleep_timeout=1) == ActorOptions(sleep_timeout=1)


def test_options_replace() -> None:
    o = ActorOptions(sleep_timeout=1.0)
    p = o.replace(action_timeout=2.0, serial=True)
    assert (p.sleep_timeout, p.action_timeout, p.serial) == (1.0, 2.0, True)
    assert o.action_timeout == 60.0
    with pytest.raises(ValueError, match="action_timeout"):
        o.replace(action_timeout=-1)
    with pytest.raises(TypeError):
        o.replace(no_such_option=1)


DURATIONS = [
    "state_save_interval",
    "action_timeout",
    "create_vars_timeout",
    "create_conn_state_timeout",
    "on_before_connect_timeout",
    "on_connect_timeout",
    "on_migrate_timeout",
    "sleep_timeout",
    "sleep_grace_period",
    "connection_liveness_timeout",
    "connection_liveness_interval",
    "on_sleep_timeout",
    "on_destroy_timeout",
    "wait_until_timeout",
]
SIZES = [
    "max_queue_size",
    "max_queue_message_size",
    "max_schedules",
    "max_incoming_message_size",
    "max_outgoing_message_size",
]
BOOLS = ["no_sleep", "serial", "durable_replies"]


@pytest.mark.parametrize("option", DURATIONS)
def test_duration_options(option: str) -> None:
    assert getattr(options(**{option: 0.25}), option) == 0.25
    assert getattr(options(**{option: 3}), option) == 3
    zero_ok = option == "state_save_interval"
    bad: list[tuple[Any, type[Exception]]] = [
        (-1, ValueError),
        (-0.5, ValueError),
        (math.inf, ValueError),
        (math.nan, ValueError),
        ("1", TypeError),
        (True, TypeError),
        ([1], TypeError),
    ]
    if option not in ("on_sleep_timeout", "on_destroy_timeout", "wait_until_timeout"):
        bad.append((None, TypeError))
    else:
        assert getattr(options(**{option: None}), option) is None
    if zero_ok:
        assert getattr(options(**{option: 0}), option) == 0
    else:
        bad.append((0, ValueError))
        bad.append((0.0, ValueError))
    for value, exc in bad:
        with pytest.raises(exc) as info:
            options(**{option: value})
        assert option in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize("option", SIZES)
def test_size_options(option: str) -> None:
    assert getattr(options(**{option: 1}), option) == 1
    assert getattr(options(**{option: 2**32 - 1}), option) == 2**32 - 1
    for value, exc in [
        (0, ValueError),
        (-1, ValueError),
        (2**32, ValueError),
        (1.0, TypeError),
        (True, TypeError),
        ("10", TypeError),
        (None, TypeError),
    ]:
        with pytest.raises(exc) as info:
            options(**{option: value})
        assert option in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize("option", BOOLS)
def test_bool_options(option: str) -> None:
    assert getattr(options(**{option: True}), option) is True
    for value in (1, 0, "yes", None):
        with pytest.raises(TypeError) as info:
            options(**{option: value})
        assert option in str(info.value) and repr(value) in str(info.value)


def test_can_hibernate_websocket() -> None:
    assert ActorOptions(can_hibernate_websocket=True).can_hibernate_websocket is True

    def predicate(request: Any) -> bool:
        return True

    assert ActorOptions(can_hibernate_websocket=predicate).can_hibernate_websocket is predicate
    for value in (1, "yes", None):
        with pytest.raises(TypeError, match="can_hibernate_websocket"):
            ActorOptions(can_hibernate_websocket=value)  # type: ignore[arg-type]

    async def async_predicate(request: Any) -> bool:
        return True

    with pytest.raises(TypeError, match="synchronous"):
        ActorOptions(can_hibernate_websocket=async_predicate)  # type: ignore[arg-type]


def test_effective_sleep_grace_period() -> None:
    assert ActorOptions(on_sleep_timeout=10.0).effective_sleep_grace_period == 25.0
    assert ActorOptions(sleep_grace_period=3.0).effective_sleep_grace_period == 3.0
    opts = ActorOptions(sleep_grace_period=3.0, on_sleep_timeout=10.0)
    assert opts.effective_sleep_grace_period == 3.0


# -- registry -------------------------------------------------------------------------------


def test_registry() -> None:
    a, b = actor("a"), actor("b")
    registry = setup(use=[a, b])
    assert isinstance(registry, Registry)
    assert registry.actors == {"a": a, "b": b}
    assert registry.get("b") is b
    assert "a" in registry and "c" not in registry
    assert len(registry) == 2 and list(registry) == [a, b]
    assert len(setup(use=[])) == 0
    assert setup(use=(d for d in [a])).actors == {"a": a}


def test_registry_unknown_actor() -> None:
    with pytest.raises(RivetError) as info:
        setup(use=[actor("a")]).get("nope")
    assert (info.value.group, info.value.code) == ("actor", "not_registered")
    assert info.value.metadata == {"name": "nope"}


def test_registry_duplicate_names() -> None:
    with pytest.raises(ValueError, match="two actors are named 'a'"):
        setup(use=[actor("a"), actor("a")])
    a = actor("a")
    with pytest.raises(ValueError, match="listed twice"):
        setup(use=[a, a])


def test_registry_rejects_non_definitions() -> None:
    with pytest.raises(TypeError, match="takes actor definitions"):
        setup(use=["counter"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not a single one"):
        setup(use=actor("a"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        setup([actor("a")])  # type: ignore[call-arg]


def test_definition_repr() -> None:
    defn = actor("a", on_wake=lambda c: None)
    defn.action(sync_fn)
    assert "sync_fn" in repr(defn)
    assert "on_wake" in repr(defn.hooks)
    assert isinstance(defn, ActorDefinition)
