"""The authoring API: actor definitions, their actions and their hooks.

::

    from rivetkit import actor, setup, UserError

    counter = actor("counter", state={"count": 0})

    @counter.action
    async def increment(c, amount: int = 1) -> int:
        c.state["count"] += amount
        return c.state["count"]

    registry = setup(use=[counter])

A definition only describes an actor; the runtime consumes it. Every misuse (a bad name, a
hook set twice, two actions with one wire name, state that cannot be stored) raises at
definition time, naming the culprit.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple, TypeVar, overload

from rivetkit.db import Database
from rivetkit.definition_checks import (
    ACTOR_NAME_PATTERN,
    check_actor_name,
    check_arity,
    check_cbor_value,
)
from rivetkit.errors import UserError
from rivetkit.options import ActorOptions
from rivetkit.runtime.plain_copy import plain_copy
from rivetkit.schemas import ActorSchemas, build_schemas, with_can_publish
from rivetkit.validation import ArgsValidator, build_action_validator, is_async_callable

__all__ = [
    "ACTION_NAME_ATTRIBUTE",
    "ACTOR_NAME_PATTERN",
    "HOOK_NAMES",
    "UNSET",
    "ActionSpec",
    "ActorDefinition",
    "EventOptions",
    "Hook",
    "Hooks",
    "UserError",
    "actor",
    "check_cbor_value",
]

F = TypeVar("F", bound=Callable[..., Any])


class _Unset:
    """The type of :data:`UNSET`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:
        return "UNSET"


#: Marks a constant (``state``, ``vars``, ``conn_state``) that was not given.
UNSET: Final = _Unset()

#: The attribute that :meth:`ActorDefinition.action` sets on a registered function: its wire
#: name (the typed ``handle.call(fn, *args)`` of the clients reads it).
ACTION_NAME_ATTRIBUTE: Final = "__rivetkit_action__"

# Each hook's positional parameters after the context; the runtime calls it with exactly
# these, and a hook that cannot take them is refused at definition time.
_HOOK_PARAMS: Final[dict[str, tuple[str, ...]]] = {
    "on_create": ("input",),
    "on_wake": (),
    "on_sleep": (),
    "on_destroy": (),
    "on_migrate": ("is_new",),
    "on_before_connect": ("params",),
    "on_connect": ("conn",),
    "on_disconnect": ("conn",),
    "on_state_change": ("new_state",),
    "on_request": ("request",),
    "on_websocket": ("websocket",),
    "on_before_action_response": ("name", "args", "output"),
    "create_state": ("input",),
    "create_vars": (),
    "create_conn_state": ("params",),
    "run": (),
}

#: The names of every hook, as keywords of :func:`actor` and decorators of the definition.
HOOK_NAMES: Final = frozenset(_HOOK_PARAMS)

# Hooks that must be synchronous (RivetKit: onStateChange runs synchronously after a change).
_SYNC_ONLY: Final = frozenset({"on_state_change"})


class ActionSpec(NamedTuple):
    """An action as the runtime calls it.

    The runtime runs ``args = spec.validate(args)`` when ``validate`` is not None, then
    ``spec.fn(c, *args)``, awaiting the result when ``is_async``.
    """

    #: The wire name clients call.
    name: str
    #: The user's function, taking the context first.
    fn: Callable[..., Any]
    #: True when ``fn`` returns a coroutine (see :func:`~rivetkit.validation.is_async_callable`).
    is_async: bool
    #: Validates and converts the wire arguments; None when no parameter is annotated.
    validate: ArgsValidator | None
    #: Run the (sync) ``fn`` in a worker thread, the actor held meanwhile (runtime/blocking.py).
    blocking: bool = False


class Hook(NamedTuple):
    """A lifecycle hook as the runtime calls it: ``fn(c, *hook_args)``, awaited if ``is_async``."""

    #: The hook's name, e.g. ``on_wake``.
    name: str
    #: The user's function, taking the context first.
    fn: Callable[..., Any]
    #: True when ``fn`` returns a coroutine.
    is_async: bool


class Hooks:
    """The hooks of an actor, one attribute per hook, None when not set.

    The runtime calls each with the context first, then the arguments below; a hook that
    cannot take them is refused at definition time. Any hook may be ``async`` except
    ``on_state_change``.

    - ``on_create(c, input)``: once, when the actor is created, after its state exists.
    - ``on_wake(c)``: on every start (create or wake), before ``run``.
    - ``on_sleep(c)``, ``on_destroy(c)``: within the grace period of a shutdown.
    - ``on_migrate(c, is_new)``: first of all on every start.
    - ``on_before_connect(c, params)``: may refuse a connection by raising.
    - ``on_connect(c, conn)``, ``on_disconnect(c, conn)``.
    - ``on_state_change(c, new_state)``: synchronous; must not change the state.
    - ``on_request(c, request)``: raw HTTP under ``/request``; returns the response.
    - ``on_websocket(c, websocket)``: raw WebSockets.
    - ``on_before_action_response(c, name, args, output)``: returns the output to send.
    - ``create_state(c, input)``: the initial state of a new actor (instead of ``state=``).
    - ``create_vars(c)``: the vars, on every start (instead of ``vars=``).
    - ``create_conn_state(c, params)``: each connection's state (instead of ``conn_state=``).
    - ``run(c)``: a background task started after ``on_wake``.
    """

    __slots__ = tuple(_HOOK_PARAMS)

    on_create: Hook | None
    on_wake: Hook | None
    on_sleep: Hook | None
    on_destroy: Hook | None
    on_migrate: Hook | None
    on_before_connect: Hook | None
    on_connect: Hook | None
    on_disconnect: Hook | None
    on_state_change: Hook | None
    on_request: Hook | None
    on_websocket: Hook | None
    on_before_action_response: Hook | None
    create_state: Hook | None
    create_vars: Hook | None
    create_conn_state: Hook | None
    run: Hook | None

    def __init__(self) -> None:
        for name in _HOOK_PARAMS:
            setattr(self, name, None)

    def __repr__(self) -> str:
        set_ = [name for name in _HOOK_PARAMS if getattr(self, name) is not None]
        return f"Hooks({', '.join(set_)})"


class EventOptions:
    """Options of one event, given as ``actor(..., events={"name": EventOptions(...)})`` or
    set with :meth:`ActorDefinition.can_subscribe`.

    ``can_subscribe(c)`` gates a client's subscription to the event (RivetKit's
    ``events.<name>.canSubscribe``): it runs when a connection asks to subscribe, with
    ``c.conn`` the asking connection, and returns a bool (or an awaitable of one); False
    refuses the subscription with ``auth.forbidden``. Events without a gate (or not declared
    at all) may be subscribed to by anyone. Subscriptions are checked once: a connection
    restored after the actor slept keeps its subscriptions without asking again. The gate
    does not filter :meth:`~rivetkit.runtime.connection.Connection.send`, which targets one
    connection whatever it subscribed to.
    """

    __slots__ = ("can_subscribe",)

    def __init__(self, *, can_subscribe: Callable[..., Any] | None = None) -> None:
        if can_subscribe is not None and not callable(can_subscribe):
            raise TypeError(
                f"can_subscribe must be callable, got {type(can_subscribe).__name__} "
                f"{can_subscribe!r}"
            )
        #: ``can_subscribe(c) -> bool`` (sync or async), or None.
        self.can_subscribe = can_subscribe

    def __repr__(self) -> str:
        return f"EventOptions(can_subscribe={self.can_subscribe!r})"


# The constant given instead of each factory hook, for "both given" errors.
_CONSTANT_OF: Final = {
    "create_state": "state",
    "create_vars": "vars",
    "create_conn_state": "conn_state",
}


class ActorDefinition:
    """An actor's definition: its name, options, initial values, actions and hooks.

    Made by :func:`actor`; add actions and hooks with its decorators, which return the
    function unchanged (it stays callable and testable on its own).

    Attributes the runtime reads:

    - ``name``: the actor name (see :data:`ACTOR_NAME_PATTERN`).
    - ``options``: the :class:`~rivetkit.options.ActorOptions`.
    - ``state_value``, ``vars_value``, ``conn_state_value``: the constants given as
      ``state=``, ``vars=``, ``conn_state=``, or :data:`UNSET`. Each new actor (or
      connection) gets a deep copy: :meth:`new_state_value` and friends.
    - ``hooks``: the :class:`Hooks`, including the factories ``create_state``,
      ``create_vars`` and ``create_conn_state``.
    - ``actions``: ``{wire name: ActionSpec}``.
    - ``events``: ``{event name: EventOptions}`` of the declared events (their
      ``can_subscribe`` gates); undeclared events are allowed.

    An actor has state when ``state_value`` is set or ``hooks.create_state`` is (see
    :attr:`has_state`); likewise for vars and connection state.
    """

    __slots__ = (
        "actions",
        "conn_state_value",
        "db",
        "events",
        "hooks",
        "name",
        "options",
        "schemas",
        "state_value",
        "vars_value",
    )

    name: str
    options: ActorOptions
    state_value: Any
    vars_value: Any
    conn_state_value: Any
    hooks: Hooks
    actions: dict[str, ActionSpec]
    events: dict[str, EventOptions]
    #: The actor's SQL database declaration (``c.db``), or None.
    db: Database | None
    #: Declared queue, event and connection-params schemas and the ``can_publish`` gate
    #: (:mod:`rivetkit.schemas`); None when the actor declares none.
    schemas: ActorSchemas | None

    def __init__(self, name: str, *, options: ActorOptions | None = None) -> None:
        self.name = check_actor_name(name)
        if options is None:
            options = ActorOptions()
        elif not isinstance(options, ActorOptions):
            raise TypeError(
                f"actor {name!r}: options must be an ActorOptions, got {type(options).__name__}"
            )
        self.options = options
        self.state_value = UNSET
        self.vars_value = UNSET
        self.conn_state_value = UNSET
        self.hooks = Hooks()
        self.actions = {}
        self.events = {}
        self.db = None
        self.schemas = None

    def __repr__(self) -> str:
        return f"<ActorDefinition {self.name!r} actions={sorted(self.actions)}>"

    @property
    def has_state(self) -> bool:
        """True when the actor has state (``state=`` or ``create_state``)."""
        return self.state_value is not UNSET or self.hooks.create_state is not None

    @property
    def has_vars(self) -> bool:
        """True when the actor has vars (``vars=`` or ``create_vars``)."""
        return self.vars_value is not UNSET or self.hooks.create_vars is not None

    @property
    def has_conn_state(self) -> bool:
        """True when connections have state (``conn_state=`` or ``create_conn_state``)."""
        return self.conn_state_value is not UNSET or self.hooks.create_conn_state is not None

    def new_state_value(self) -> Any:
        """A deep copy of the constant ``state``, for a new actor (None when not given)."""
        return None if self.state_value is UNSET else plain_copy(self.state_value)

    def new_vars_value(self) -> Any:
        """A deep copy of the constant ``vars``, for a starting actor (None when not given)."""
        return None if self.vars_value is UNSET else plain_copy(self.vars_value)

    def new_conn_state_value(self) -> Any:
        """A deep copy of the constant ``conn_state``, for a connection (None when not given)."""
        return None if self.conn_state_value is UNSET else plain_copy(self.conn_state_value)

    # -- actions ---------------------------------------------------------------------------

    @overload
    def action(self, fn: F, /) -> F: ...

    @overload
    def action(
        self, fn: None = None, /, *, name: str | None = None, blocking: bool = False
    ) -> Callable[[F], F]: ...

    def action(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        blocking: bool = False,
    ) -> Any:
        """Register an action; use as ``@defn.action`` or ``@defn.action(name="getCount")``.

        The wire name is ``name``, or the function's ``__name__``. The function takes the
        context first, then the wire arguments positionally; it may be sync or async.
        Annotated parameters are validated (see :mod:`rivetkit.validation`).
        ``blocking=True`` (sync functions only) runs it in a worker thread while the actor
        waits (see :mod:`rivetkit.runtime.blocking`).

        :raises TypeError: when ``fn`` is not callable, ``name`` is not a str, or ``fn``'s
            signature cannot serve as an action
        :raises ValueError: when ``name`` is empty or already taken on this actor
        """
        if fn is None:

            def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
                self.add_action(fn, name=name, blocking=blocking)
                return fn

            return decorator
        self.add_action(fn, name=name, blocking=blocking)
        return fn

    def add_action(
        self, fn: Callable[..., Any], *, name: str | None = None, blocking: bool = False
    ) -> ActionSpec:
        """Register ``fn`` as an action (what :meth:`action` does) and return its spec.

        :raises TypeError: also when ``blocking`` is true and ``fn`` is async
        """
        if not callable(fn):
            raise TypeError(f"actor {self.name!r}: an action must be callable, got {fn!r}")
        if name is None:
            name = getattr(fn, "__name__", None)
            if not isinstance(name, str):
                raise TypeError(
                    f"actor {self.name!r}: {fn!r} has no __name__; give the action a name="
                )
        elif not isinstance(name, str):
            raise TypeError(
                f"actor {self.name!r}: an action name must be a str, got {type(name).__name__} "
                f"{name!r}"
            )
        if not name:
            raise ValueError(f"actor {self.name!r}: an action name must not be empty")
        if name in self.actions:
            raise ValueError(
                f"actor {self.name!r}: action {name!r} is already defined "
                f"(by {self.actions[name].fn!r})"
            )
        label = f"actor {self.name!r}, action {name!r}"
        is_async = is_async_callable(fn)
        if blocking and is_async:
            raise TypeError(
                f"{label}: blocking=True is for sync functions (it runs them in a worker "
                "thread); an async action already yields the event loop: drop blocking=True"
            )
        validate = build_action_validator(fn, label=label)
        spec = ActionSpec(name, fn, is_async, validate, bool(blocking))
        self.actions[name] = spec
        # The wire name travels with the function, for typed calls (``handle.call(fn, ...)``).
        # A callable that takes no attributes (a builtin, a bound method) is still an action.
        with contextlib.suppress(AttributeError, TypeError):
            fn.__rivetkit_action__ = name  # type: ignore[attr-defined]
        return spec

    # -- events ------------------------------------------------------------------------------

    def add_event(self, name: str, options: EventOptions | None = None) -> EventOptions:
        """Declare the event ``name`` (what ``events=`` does) and return its options.

        :raises TypeError: for a non-str name or options that are not an
            :class:`EventOptions`
        :raises ValueError: for an empty name or an event declared twice
        """
        if not isinstance(name, str):
            raise TypeError(
                f"actor {self.name!r}: an event name must be a str, got {type(name).__name__} "
                f"{name!r}"
            )
        if not name:
            raise ValueError(f"actor {self.name!r}: an event name must not be empty")
        if options is None:
            options = EventOptions()
        elif not isinstance(options, EventOptions):
            raise TypeError(
                f"actor {self.name!r}, event {name!r}: give an EventOptions, got "
                f"{type(options).__name__} {options!r}"
            )
        if name in self.events:
            raise ValueError(f"actor {self.name!r}: event {name!r} is already declared")
        gate = options.can_subscribe
        if gate is not None:
            check_arity(gate, 1, f"actor {self.name!r}, can_subscribe of {name!r}", ("c",))
        self.events[name] = options
        return options

    def can_subscribe(self, event: str) -> Callable[[F], F]:
        """Decorator: ``@defn.can_subscribe("name")`` sets the event's subscription gate
        ``fn(c) -> bool`` (``c.conn`` is the connection asking; see :class:`EventOptions`).

        :raises ValueError: when the event already has a gate
        """

        def decorator(fn: F) -> F:
            current = self.events.get(event)
            if current is not None and current.can_subscribe is not None:
                raise ValueError(
                    f"actor {self.name!r}: event {event!r} already has a can_subscribe gate"
                )
            if current is not None:
                del self.events[event]
            self.add_event(event, EventOptions(can_subscribe=fn))
            return fn

        return decorator

    def can_publish(self, fn: F) -> F:
        """Decorator: ``@defn.can_publish`` sets the gate ``fn(c, name, body) -> bool`` (sync
        or async) of client queue sends; false refuses with ``auth/forbidden``
        (see :mod:`rivetkit.schemas`).

        :raises TypeError: when a gate is already set or ``fn`` cannot take its arguments
        """
        self.schemas = with_can_publish(self.schemas, self.name, fn)
        return fn

    # -- hooks -------------------------------------------------------------------------------

    def set_hook(self, hook: str, fn: Callable[..., Any]) -> Hook:
        """Set the hook named ``hook`` (what the hook decorators do) and return it.

        :raises TypeError: for an unknown hook name, a hook already set, a non-callable
            ``fn``, a signature that cannot take the hook's arguments, an async
            ``on_state_change``, or a factory given with its constant (``create_state``
            with ``state=``)
        """
        if hook not in _HOOK_PARAMS:
            raise TypeError(
                f"actor {self.name!r}: unknown hook {hook!r}; hooks are {sorted(_HOOK_PARAMS)}"
            )
        label = f"actor {self.name!r}, hook {hook!r}"
        if not callable(fn):
            raise TypeError(f"{label}: must be callable, got {type(fn).__name__} {fn!r}")
        if getattr(self.hooks, hook) is not None:
            raise TypeError(f"{label}: already set (to {getattr(self.hooks, hook).fn!r})")
        constant = _CONSTANT_OF.get(hook)
        if constant is not None and getattr(self, f"{constant}_value") is not UNSET:
            raise TypeError(f"actor {self.name!r}: give either {constant!r} or {hook!r}, not both")
        is_async = is_async_callable(fn)
        if is_async and hook in _SYNC_ONLY:
            raise TypeError(f"{label}: must be a synchronous function, got the async {fn!r}")
        check_arity(fn, 1 + len(_HOOK_PARAMS[hook]), label, ("c", *_HOOK_PARAMS[hook]))
        entry = Hook(hook, fn, is_async)
        setattr(self.hooks, hook, entry)
        return entry

    def on_create(self, fn: F) -> F:
        """Hook ``on_create(c, input)``: once, when the actor is created."""
        self.set_hook("on_create", fn)
        return fn

    def on_wake(self, fn: F) -> F:
        """Hook ``on_wake(c)``: on every start (create or wake), before ``run``."""
        self.set_hook("on_wake", fn)
        return fn

    def on_sleep(self, fn: F) -> F:
        """Hook ``on_sleep(c)``: before the actor sleeps, within the grace period."""
        self.set_hook("on_sleep", fn)
        return fn

    def on_destroy(self, fn: F) -> F:
        """Hook ``on_destroy(c)``: before the actor is destroyed, within the grace period."""
        self.set_hook("on_destroy", fn)
        return fn

    def on_migrate(self, fn: F) -> F:
        """Hook ``on_migrate(c, is_new)``: first of all on every start."""
        self.set_hook("on_migrate", fn)
        return fn

    def on_before_connect(self, fn: F) -> F:
        """Hook ``on_before_connect(c, params)``: raise to refuse a connection."""
        self.set_hook("on_before_connect", fn)
        return fn

    def on_connect(self, fn: F) -> F:
        """Hook ``on_connect(c, conn)``: a connection is established."""
        self.set_hook("on_connect", fn)
        return fn

    def on_disconnect(self, fn: F) -> F:
        """Hook ``on_disconnect(c, conn)``: a connection is gone."""
        self.set_hook("on_disconnect", fn)
        return fn

    def on_state_change(self, fn: F) -> F:
        """Hook ``on_state_change(c, new_state)``: synchronous, after a state change."""
        self.set_hook("on_state_change", fn)
        return fn

    def on_request(self, fn: F) -> F:
        """Hook ``on_request(c, request)``: raw HTTP under ``/request``; returns the response."""
        self.set_hook("on_request", fn)
        return fn

    def on_websocket(self, fn: F) -> F:
        """Hook ``on_websocket(c, websocket)``: a raw WebSocket."""
        self.set_hook("on_websocket", fn)
        return fn

    def on_before_action_response(self, fn: F) -> F:
        """Hook ``on_before_action_response(c, name, args, output)``: returns the output."""
        self.set_hook("on_before_action_response", fn)
        return fn

    def create_state(self, fn: F) -> F:
        """Factory ``create_state(c, input)``: a new actor's initial state (CBOR-encodable)."""
        self.set_hook("create_state", fn)
        return fn

    def create_vars(self, fn: F) -> F:
        """Factory ``create_vars(c)``: the actor's vars, on every start."""
        self.set_hook("create_vars", fn)
        return fn

    def create_conn_state(self, fn: F) -> F:
        """Factory ``create_conn_state(c, params)``: a new connection's state."""
        self.set_hook("create_conn_state", fn)
        return fn

    def run(self, fn: F) -> F:
        """Hook ``run(c)``: a background task started after ``on_wake``."""
        self.set_hook("run", fn)
        return fn


def actor(
    name: str,
    *,
    state: Any = UNSET,
    create_state: Callable[..., Any] | None = None,
    vars: Any = UNSET,
    create_vars: Callable[..., Any] | None = None,
    conn_state: Any = UNSET,
    create_conn_state: Callable[..., Any] | None = None,
    options: ActorOptions | None = None,
    actions: Mapping[str, Callable[..., Any]] | None = None,
    events: Mapping[str, Any] | None = None,
    db: Database | None = None,
    queues: Mapping[str, Any] | None = None,
    conn_params: Any = UNSET,
    can_publish: Callable[..., Any] | None = None,
    **hooks: Callable[..., Any],
) -> ActorDefinition:
    """Define an actor.

    :param name: the actor name: 1 to 128 ASCII letters, digits, ``_``, ``.`` and ``-``,
        starting with a letter or digit (:data:`ACTOR_NAME_PATTERN`)
    :param state: the initial state of every new actor; each gets a deep copy. It must be
        CBOR-encodable: None, bool, int, float, str, bytes, and lists and dicts of them
        (dict keys: str, int, bytes, bool, float or None)
    :param create_state: ``create_state(c, input)`` returns the initial state instead
    :param vars: the vars of every starting actor (not persisted); each start gets a deep
        copy, so use ``create_vars`` for values that cannot be copied (clients, locks)
    :param create_vars: ``create_vars(c)`` returns the vars instead
    :param conn_state: the initial state of every connection (CBOR-encodable, deep-copied)
    :param create_conn_state: ``create_conn_state(c, params)`` returns it instead
    :param options: the actor's :class:`~rivetkit.options.ActorOptions`
    :param actions: actions by wire name, as with ``@defn.action(name=...)``
    :param events: declared events by name, each with its :class:`EventOptions` (None for
        none), e.g. ``{"moderation": EventOptions(can_subscribe=is_admin)}``, or with the
        type of its payload (``{"message": Message}``; see :mod:`rivetkit.schemas`)
    :param queues: the queues clients may send to, each with the type of its body (anything
        pydantic's ``TypeAdapter`` accepts); sends to other names are refused
    :param conn_params: the type connection params must match
    :param can_publish: ``can_publish(c, name, body) -> bool`` gates client queue sends
    :param db: the actor's SQL database (:class:`rivetkit.db.Database` with its migrations),
        reached as ``c.db``
    :param hooks: any hook by name (``on_wake=fn``; see :data:`HOOK_NAMES` and
        :class:`Hooks`); each can also be set later with its decorator
    :raises TypeError: for a value and its factory both given, non-encodable state, an
        unknown hook or a bad hook, or a non-str name
    :raises ValueError: for a name that does not match :data:`ACTOR_NAME_PATTERN`
    """
    definition = ActorDefinition(name, options=options)
    if db is not None:
        if not isinstance(db, Database):
            raise TypeError(f"actor {name!r}: db must be a rivetkit.db.Database, got {db!r}")
        definition.db = db
    for constant, given, factory, factory_name in (
        ("state", state, create_state, "create_state"),
        ("vars", vars, create_vars, "create_vars"),
        ("conn_state", conn_state, create_conn_state, "create_conn_state"),
    ):
        if given is not UNSET and factory is not None:
            raise TypeError(
                f"actor {name!r}: give either {constant!r} or {factory_name!r}, not both"
            )
    # Constants are copied now too, so the caller changing its object later changes nothing.
    if state is not UNSET:
        check_cbor_value(state, f"actor {name!r}: state")
        definition.state_value = copy.deepcopy(state)
    if conn_state is not UNSET:
        check_cbor_value(conn_state, f"actor {name!r}: conn_state")
        definition.conn_state_value = copy.deepcopy(conn_state)
    if vars is not UNSET:
        try:
            definition.vars_value = copy.deepcopy(vars)
        except Exception as exc:
            raise TypeError(
                f"actor {name!r}: vars cannot be deep-copied ({exc}); use create_vars instead"
            ) from exc
    for hook, fn in (
        ("create_state", create_state),
        ("create_vars", create_vars),
        ("create_conn_state", create_conn_state),
    ):
        if fn is not None:
            definition.set_hook(hook, fn)
    for hook, fn in hooks.items():
        if hook not in _HOOK_PARAMS:
            raise TypeError(
                f"actor() got an unexpected keyword argument {hook!r}; "
                f"hooks are {sorted(_HOOK_PARAMS)}"
            )
        definition.set_hook(hook, fn)
    if actions is not None:
        for action_name, fn in actions.items():
            definition.add_action(fn, name=action_name)
    event_types: dict[str, Any] = {}
    if events is not None:
        for event_name, event_options in events.items():
            if event_options is not None and not isinstance(event_options, EventOptions):
                event_types[event_name] = event_options
                event_options = None
            definition.add_event(event_name, event_options)
    definition.schemas = build_schemas(
        name,
        queues=queues,
        events=event_types,
        conn_params=None if conn_params is UNSET else conn_params,
        has_conn_params=conn_params is not UNSET,
        can_publish=can_publish,
    )
    return definition
