"""Declared schemas of an actor: queue bodies, event payloads, connection params, and the
``can_publish`` gate of queue sends.

::

    worker = actor(
        "worker",
        queues={"jobs": Job},               # Job: anything pydantic's TypeAdapter accepts
        events={"progress": int},
        conn_params=Params,
    )

    @worker.can_publish
    def can_publish(c, name, body) -> bool:
        return c.conn.params["role"] == "producer"

Each type gets one :class:`pydantic.TypeAdapter`, built when the actor is defined; a type
pydantic cannot handle raises :class:`TypeError` then, naming the actor, the schema and the
type. A value that passes is *normalized*: validated, then dumped back to plain data
(``TypeAdapter.dump_python``), so ``"5"`` declared ``int`` becomes ``5``, a model's defaults
are filled in and its unknown keys dropped, and what is stored (a queue message, a
connection's params) or sent (an event) stays plain, encodable data.

Where the checks run (the hook lines call the functions of this module):

- a client's queue send (``POST /queue/{name}``): :meth:`ActorSchemas.gate_send` refuses an
  undeclared queue (``queue/not_declared``, when ``queues`` is given) then runs
  ``can_publish`` (False: ``auth/forbidden``); the queue itself then validates the body
  (:meth:`ActorSchemas.queue_body`, ``actor/validation_error``), for the actor's own
  ``c.queue.send`` too;
- a connection (WebSocket ``/connect``, raw WebSocket, and the ephemeral connection of an HTTP
  action or queue send): :func:`conn_params_of`, before ``on_before_connect``;
- ``c.broadcast`` and ``conn.send``: :meth:`ActorSchemas.event_args`, which raises
  :class:`EventPayloadError` (a programming error) and sends nothing.

An actor that declares nothing has ``definition.schemas`` None, and each hook line is one
attribute test.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from rivetkit.errors import RivetError
from rivetkit.validation import is_async_callable, validation_error

if TYPE_CHECKING:
    from rivetkit.actor import ActorDefinition

__all__ = [
    "ActorSchemas",
    "EventPayloadError",
    "Normalizer",
    "build_schemas",
    "conn_params_of",
    "not_declared",
    "with_can_publish",
]

#: Validates a value and returns its normalized plain form, or raises
#: ``actor/validation_error`` (:class:`~rivetkit.errors.RivetError`).
Normalizer = Callable[[Any], Any]

# At most this many pydantic errors travel in an error's metadata.
_MAX_ERRORS: Final = 10


class EventPayloadError(ValueError):
    """An event broadcast (or sent to one connection) with a payload that fails its declared
    schema: a bug in the actor. Nothing is sent; an action raising it fails as an internal
    error."""


def _normalizer(tp: Any, what: str, label: str) -> Normalizer:
    """The normalizer of values of ``tp``; ``what`` names the value in errors
    (``queue `jobs` message``), ``label`` the schema at definition time."""
    from pydantic import TypeAdapter, ValidationError

    if isinstance(tp, str):
        raise TypeError(f"{label}: give the type itself, not a string ({tp!r})")
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(tp)
    except Exception as exc:
        raise TypeError(f"{label}: pydantic cannot validate values of type {tp!r}: {exc}") from exc
    if not getattr(adapter, "pydantic_complete", True):
        raise TypeError(f"{label}: the type {tp!r} refers to names not defined yet")
    validate = adapter.validate_python
    dump = adapter.dump_python

    def normalize(value: Any) -> Any:
        try:
            return dump(validate(value))
        except ValidationError as exc:
            raise _invalid(what, exc.errors(include_url=False, include_context=False)) from None

    return normalize


def _invalid(what: str, pydantic_errors: list[Any]) -> RivetError:
    errors = [
        {"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]}
        for e in pydantic_errors[:_MAX_ERRORS]
    ]
    first = errors[0]
    path = ".".join(str(part) for part in first["loc"])
    detail = f"{path}: {first['msg']}" if path else first["msg"]
    return validation_error(f"Invalid {what}: {detail}", errors)


def not_declared(name: str, declared: Mapping[str, Any]) -> RivetError:
    """``queue/not_declared`` (HTTP 400): a send to a queue the actor did not declare."""
    return RivetError(
        "queue",
        "not_declared",
        f"queue {name!r} is not declared by this actor (declared: {sorted(declared)})",
        metadata={"name": name},
    )


def _forbidden() -> RivetError:
    return RivetError("auth", "forbidden", "Forbidden")


class ActorSchemas:
    """The declared schemas of one actor (``definition.schemas``; None when none).

    ``queues`` is None when the actor declared no queues (every name accepted, nothing
    validated); ``events`` holds only the events declared with a type; ``conn_params`` is
    None when not declared; ``can_publish`` is the gate ``fn(c, name, body)`` or None.
    """

    __slots__ = ("can_publish", "can_publish_is_async", "conn_params", "events", "queues")

    queues: dict[str, Normalizer] | None
    events: dict[str, Normalizer]
    conn_params: Normalizer | None
    can_publish: Callable[..., Any] | None
    can_publish_is_async: bool

    def __init__(self) -> None:
        self.queues = None
        self.events = {}
        self.conn_params = None
        self.can_publish = None
        self.can_publish_is_async = False

    def __repr__(self) -> str:
        return (
            f"ActorSchemas(queues={None if self.queues is None else sorted(self.queues)}, "
            f"events={sorted(self.events)}, conn_params={self.conn_params is not None}, "
            f"can_publish={self.can_publish!r})"
        )

    def queue_body(self, name: str, body: Any) -> Any:
        """The body to store for a send to queue ``name``: normalized when the queue has a
        schema, unchanged when no queues are declared.

        :raises RivetError: ``queue/not_declared`` for a name not in ``queues``;
            ``actor/validation_error`` for a body that fails the schema
        """
        queues = self.queues
        if queues is None:
            return body
        normalize = queues.get(name)
        if normalize is None:
            raise not_declared(name, queues)
        return normalize(body)

    async def gate_send(self, c: Any, name: str, body: Any) -> None:
        """A client's queue send, before it reaches the queue: the queue must be declared
        (when ``queues`` is given), then ``can_publish(c, name, body)`` must return true.

        ``body`` is the body as the client sent it (not yet validated, as in RivetKit, where
        ``canPublish`` runs before the schema).

        :raises RivetError: ``queue/not_declared``; ``auth/forbidden`` when the gate
            refuses; whatever the gate raises
        """
        queues = self.queues
        if queues is not None and name not in queues:
            raise not_declared(name, queues)
        gate = self.can_publish
        if gate is None:
            return
        allowed = gate(c, name, body)
        if self.can_publish_is_async or inspect.isawaitable(allowed):
            allowed = await allowed
        if not allowed:
            raise _forbidden()

    def event_args(self, event: str, args: tuple[Any, ...] | list[Any]) -> list[Any]:
        """The arguments to send for ``event``, normalized when it has a schema.

        As in RivetKit, the payload checked is the single argument (None for none), or the
        list of arguments when there are several.

        :raises EventPayloadError: the payload fails the event's schema
        """
        normalize = self.events.get(event)
        if normalize is None:
            return list(args)
        payload = args[0] if len(args) == 1 else (None if not args else list(args))
        try:
            data = normalize(payload)
        except RivetError as exc:
            raise EventPayloadError(
                f"the payload of event {event!r} does not match its declared schema: {exc.message}"
            ) from None
        if len(args) <= 1:
            return [data] if args else ([] if data is None else [data])
        return list(data) if isinstance(data, list | tuple) else [data]


def _empty(schemas: ActorSchemas) -> bool:
    return (
        schemas.queues is None
        and not schemas.events
        and schemas.conn_params is None
        and schemas.can_publish is None
    )


def build_schemas(
    actor_name: str,
    *,
    queues: Mapping[str, Any] | None = None,
    events: Mapping[str, Any] | None = None,
    conn_params: Any = None,
    has_conn_params: bool = False,
    can_publish: Callable[..., Any] | None = None,
) -> ActorSchemas | None:
    """The schemas of the actor ``actor_name``, or None when nothing is declared.

    ``queues`` and ``events`` map names to types; ``conn_params`` is a type, used when
    ``has_conn_params`` (so that ``None`` itself may be declared).

    :raises TypeError: for a non-str or empty name, a type pydantic cannot validate, or a
        ``can_publish`` that cannot take ``(c, name, body)``
    """
    schemas = ActorSchemas()
    label = f"actor {actor_name!r}"
    if queues is not None:
        if not isinstance(queues, Mapping):
            raise TypeError(f"{label}: queues must be a mapping of name to type, got {queues!r}")
        schemas.queues = {
            _check_name(name, "queue", label): _normalizer(
                tp, f"queue `{name}` message", f"{label}, queue {name!r}"
            )
            for name, tp in queues.items()
        }
    for name, tp in (events or {}).items():
        schemas.events[_check_name(name, "event", label)] = _normalizer(
            tp, f"event `{name}` payload", f"{label}, event {name!r}"
        )
    if has_conn_params:
        schemas.conn_params = _normalizer(conn_params, "connection params", f"{label}, conn_params")
    if can_publish is not None:
        _set_can_publish(schemas, label, can_publish)
    return None if _empty(schemas) else schemas


def with_can_publish(
    schemas: ActorSchemas | None, actor_name: str, fn: Callable[..., Any]
) -> ActorSchemas:
    """``schemas`` (a new object when None) with the ``can_publish`` gate ``fn``.

    :raises TypeError: when a gate is already set or ``fn`` cannot take ``(c, name, body)``
    """
    if schemas is None:
        schemas = ActorSchemas()
    _set_can_publish(schemas, f"actor {actor_name!r}", fn)
    return schemas


def _set_can_publish(schemas: ActorSchemas, label: str, fn: Callable[..., Any]) -> None:
    if not callable(fn):
        raise TypeError(f"{label}: can_publish must be callable, got {fn!r}")
    if schemas.can_publish is not None:
        raise TypeError(f"{label}: can_publish is already set (to {schemas.can_publish!r})")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        try:
            sig.bind(None, None, None)
        except TypeError:
            raise TypeError(
                f"{label}: can_publish must accept 3 positional arguments (c, name, body), "
                f"but {fn!r} has the signature {sig}"
            ) from None
    schemas.can_publish = fn
    schemas.can_publish_is_async = is_async_callable(fn)


def _check_name(name: Any, kind: str, label: str) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{label}: a {kind} name must be a non-empty str, got {name!r}")
    return name


def conn_params_of(definition: ActorDefinition, params: Any) -> Any:
    """The params a new connection to an actor of ``definition`` opens with: normalized when
    the actor declares ``conn_params``, else ``params`` unchanged.

    :raises RivetError: ``actor/validation_error`` for params failing the schema
    """
    schemas = definition.schemas
    if schemas is None or schemas.conn_params is None:
        return params
    return schemas.conn_params(params)
