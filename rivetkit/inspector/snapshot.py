"""What the inspector shows of an actor, shared by the HTTP routes and the WebSocket.

Each view is computed from a live :class:`~rivetkit.runtime.instance.ActorInstance` as plain
values (JSON-ready dicts and lists); the WebSocket encodes them as CBOR into its BARE
messages, the HTTP routes as JSON. Nothing here knows about either transport.
"""

from __future__ import annotations

import math
import sqlite3
from typing import TYPE_CHECKING, Any, Final

from rivetkit.db import _statements as split_statements
from rivetkit.errors import RivetError
from rivetkit.inspector.sandbox import run_sandboxed
from rivetkit.inspector.workflow import summary_fields as workflow_fields
from rivetkit.protocol.actor_persist import QUEUE_MESSAGE
from rivetkit.runtime import keys
from rivetkit.runtime.queuescan import message_id

if TYPE_CHECKING:
    from rivetkit.runtime.instance import ActorInstance
    from rivetkit.runtime.schedule import ScheduledEvent

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_ROWS",
    "QueueView",
    "ScheduleView",
    "connections",
    "database_enabled",
    "database_execute",
    "database_rows",
    "database_schema",
    "invalid_request",
    "jsonable",
    "queue_size",
    "queue_view",
    "rpcs",
    "run_action",
    "schedule_history",
    "schedules",
    "state_enabled",
    "state_value",
    "summary",
]

#: Default ``limit`` of the queue and table-rows views.
DEFAULT_LIMIT: Final = 100
#: Most rows a table-rows request returns.
MAX_ROWS: Final = 500
#: Tables of ours (and SQLite's) that the schema view leaves out.
_HIDDEN_TABLES: Final = ("sqlite_%", "_rivetkit_%")


def invalid_request(field: str, reason: str) -> RivetError:
    """``inspector.invalid_request`` (HTTP 400) about one field of a request."""
    return RivetError(
        "inspector",
        "invalid_request",
        f"Invalid inspector request {field}: {reason}",
        metadata={"field": field, "reason": reason},
    )


def jsonable(value: Any) -> Any:
    """``value`` (an actor value: what CBOR can hold) as plain JSON data.

    Byte strings become arrays of numbers and non-finite floats ``null``, as a CBOR to JSON
    conversion does; map keys become strings.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return list(bytes(value))
    if isinstance(value, (set, frozenset)):
        return [jsonable(item) for item in value]
    return str(value)


# -- state, connections, actions ---------------------------------------------------------------


def state_enabled(instance: ActorInstance) -> bool:
    """True when the actor has state."""
    return bool(instance.definition.has_state)


def state_value(instance: ActorInstance) -> Any:
    """The state as JSON data (None without state)."""
    return jsonable(instance.state) if state_enabled(instance) else None


def connections(instance: ActorInstance) -> list[dict[str, Any]]:
    """The connections as the inspector lists them."""
    return [
        {
            "type": None,
            "id": conn.id,
            "details": {
                "type": None,
                "params": jsonable(conn.params),
                "stateEnabled": True,
                "state": jsonable(conn.state),
                "subscriptions": len(conn.subscriptions),
                "isHibernatable": bool(conn.hibernatable),
            },
        }
        for conn in list(instance.conns.values())
    ]


def rpcs(instance: ActorInstance) -> list[str]:
    """The actions' wire names."""
    return list(instance.definition.actions)


async def run_action(instance: ActorInstance, name: str, args: list[Any]) -> Any:
    """Run an action for the inspector, over a transient connection (as RivetKit does)."""
    conn = await instance.connect(None)
    try:
        return await instance.invoke(name, args, conn)
    finally:
        try:
            await instance.disconnect(conn, None)
        except Exception:
            instance.log.exception("closing the inspector's action connection failed")


# -- queue ------------------------------------------------------------------------------------


class QueueView:
    """The queue's status: ``size``, ``max_size``, the first ``messages`` as
    ``(id, name, created_at_ms)`` and whether more exist (``truncated``)."""

    __slots__ = ("max_size", "messages", "size", "truncated")

    def __init__(
        self, size: int, max_size: int, messages: list[tuple[int, str, int]], truncated: bool
    ) -> None:
        self.size = size
        self.max_size = max_size
        self.messages = messages
        self.truncated = truncated

    def to_json(self) -> dict[str, Any]:
        """The HTTP form."""
        return {
            "size": self.size,
            "maxSize": self.max_size,
            "truncated": self.truncated,
            "messages": [
                {"id": ident, "name": name, "createdAtMs": created}
                for ident, name, created in self.messages
            ],
        }


def queue_size(instance: ActorInstance) -> int:
    """How many messages are queued now (in-flight completable ones included)."""
    return int(instance.queue.size)


async def queue_view(instance: ActorInstance, limit: int) -> QueueView:
    """The stored queue (a live read of its KV entries), with at most ``limit`` messages."""
    entries = await instance.kv_list_prefix(keys.QUEUE_MESSAGE_PREFIX)
    messages = []
    for key, value in entries[: max(0, limit)]:
        try:
            stored = QUEUE_MESSAGE.decode(value)
            messages.append((message_id(key), stored.name, max(0, int(stored.created_at))))
        except RivetError:
            continue  # unreadable entries are skipped, as the queue itself does
    return QueueView(
        len(entries), int(instance.options.max_queue_size), messages, len(entries) > limit
    )


# -- schedules --------------------------------------------------------------------------------


class ScheduleView:
    """One schedule as the inspector shows it (v6 ``Schedule``)."""

    __slots__ = (
        "action",
        "args",
        "expression",
        "id",
        "interval_ms",
        "kind",
        "name",
        "next_ms",
        "timezone",
    )

    def __init__(self, event: ScheduledEvent) -> None:
        self.id = event.id
        self.name = event.name
        self.kind = event.kind
        self.action = event.action
        self.args = list(event.args)
        self.next_ms = _ms(event.next_at)
        self.expression = event.expression
        self.timezone = event.timezone
        self.interval_ms = None if event.interval is None else _ms(event.interval)

    def to_json(self) -> dict[str, Any]:
        """The HTTP form."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "action": self.action,
            "args": jsonable(self.args),
            "nextRunAt": self.next_ms,
            "lastRunAt": None,
            "expression": self.expression,
            "timezone": self.timezone,
            "intervalMs": self.interval_ms,
            "maxHistory": None,
        }

    def key(self) -> tuple[Any, ...]:
        """What a change of the schedule changes (push only on a difference)."""
        return (
            self.id,
            self.kind,
            self.action,
            repr(self.args),
            self.next_ms,
            self.expression,
            self.timezone,
            self.interval_ms,
        )


def _ms(seconds: float) -> int:
    if not math.isfinite(seconds) or seconds < 0:
        return 0
    return int(seconds * 1000)


def schedules(instance: ActorInstance) -> list[ScheduleView]:
    """Every schedule, soonest first."""
    return [ScheduleView(event) for event in instance.schedule.list()]


async def schedule_history(
    instance: ActorInstance, schedule_id: str, limit: int
) -> list[dict[str, Any]]:
    """The latest runs of a recurring schedule (one-shot events keep none), newest first."""
    prefix = "cron:"
    if not schedule_id.startswith(prefix):
        return []
    name = schedule_id[len(prefix) :]
    found = instance.schedule.get(schedule_id)
    action = "" if found is None else found.action
    entries = await instance.schedule.history(name, limit=max(0, min(limit, 1000)))
    return [
        {
            "action": action,
            "scheduledAt": _ms(entry.scheduled_at),
            "firedAt": _ms(entry.fired_at),
            "finishedAt": None if entry.finished_at is None else _ms(entry.finished_at),
            "result": entry.result,
            "error": entry.error,
        }
        for entry in entries
    ]


# -- SQL database -----------------------------------------------------------------------------


def database_enabled(instance: ActorInstance) -> bool:
    """True when the actor declares a SQL database (every driver provides them)."""
    return instance.definition.db is not None


def _not_enabled() -> RivetError:
    return RivetError("database", "not_enabled", "Database is not enabled for this actor")


async def _sql(instance: ActorInstance, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    """Run one statement on the actor's database (in its order with the actor's own
    statements) inside the inspector's SQL sandbox (:mod:`rivetkit.inspector.sandbox`); its
    rows as dicts (none for a statement that returns no rows)."""
    if not database_enabled(instance):
        raise _not_enabled()
    db = instance.db

    def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        return run_sandboxed(conn, sql, params)

    rows: list[dict[str, Any]] = await db._call(run)
    return rows


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def _tables(instance: ActorInstance) -> list[dict[str, Any]]:
    hidden = " AND ".join(f"name NOT LIKE '{pattern}'" for pattern in _HIDDEN_TABLES)
    return await _sql(
        instance,
        "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') AND "
        f"{hidden} ORDER BY name",
    )


async def database_schema(instance: ActorInstance) -> dict[str, Any]:
    """``{"tables": [{table: {schema, name, type}, columns, foreignKeys, records}]}``."""
    tables = []
    for row in await _tables(instance):
        name = str(row["name"])
        quoted = _quote(name)
        columns = await _sql(instance, f"PRAGMA table_info({quoted})")
        foreign_keys = await _sql(instance, f"PRAGMA foreign_key_list({quoted})")
        counted = await _sql(instance, f"SELECT COUNT(*) AS count FROM {quoted}")
        tables.append(
            {
                "table": {"schema": "main", "name": name, "type": row.get("type") or "table"},
                "columns": columns,
                "foreignKeys": foreign_keys,
                "records": int(counted[0]["count"]) if counted else 0,
            }
        )
    return {"tables": tables}


async def database_rows(
    instance: ActorInstance, table: str, limit: int, offset: int
) -> list[dict[str, Any]]:
    """Rows of ``table`` (at most :data:`MAX_ROWS`)."""
    if table not in {str(row["name"]) for row in await _tables(instance)}:
        raise invalid_request("table", f"no table {table[:100]!r}")
    return await _sql(
        instance,
        f"SELECT * FROM {_quote(table)} LIMIT ? OFFSET ?",
        (max(0, min(limit, MAX_ROWS)), max(0, offset)),
    )


async def database_execute(
    instance: ActorInstance, sql: Any, args: Any, properties: Any
) -> list[dict[str, Any]]:
    """Run one SQL statement (a script of several is refused) with positional ``args`` or
    named ``properties``."""
    if not isinstance(sql, str) or not sql.strip():
        raise invalid_request("sql", "must be a non-empty string")
    # One statement, on both drivers: apsw (engine) would run a script's statements up to a
    # refused one, where sqlite3 (embedded) refuses any script.
    if len(split_statements(sql)) > 1:
        raise invalid_request("sql", "must hold one statement")
    if args is None:
        args = []
    if not isinstance(args, list):
        raise invalid_request("args", "must be an array")
    if properties is not None and not isinstance(properties, dict):
        raise invalid_request("properties", "must be an object")
    if args and properties is not None:
        raise invalid_request("parameters", "use either args or properties, not both")
    params: Any = properties if properties is not None else tuple(args)
    return await _sql(instance, sql, params)


# -- summary ----------------------------------------------------------------------------------


async def summary(instance: ActorInstance) -> dict[str, Any]:
    """Everything the inspector's overview shows at once."""
    return {
        "state": state_value(instance),
        "isStateEnabled": state_enabled(instance),
        "connections": connections(instance),
        "rpcs": rpcs(instance),
        "queueSize": queue_size(instance),
        "isDatabaseEnabled": database_enabled(instance),
        **await workflow_fields(instance),
    }
