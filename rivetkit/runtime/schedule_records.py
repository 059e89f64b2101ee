"""What schedules are made of: the views ``c.schedule`` returns (:class:`ScheduledEvent`,
:class:`HistoryEntry`), recurring schedules as stored (:class:`RecurringSchedule`, one fire of
one: :class:`RecurringRun`) under our KV prefix ``[8]``, their validation, and the cron/every
cadence (:func:`next_cron`, :func:`next_every`). :mod:`rivetkit.runtime.schedule` runs them.
"""

from __future__ import annotations

import datetime as _dt
import math
import zoneinfo
from typing import Any, NamedTuple

from rivetkit.errors import RivetError
from rivetkit.protocol.actor_persist import ScheduleEvent
from rivetkit.protocol.values import cbor_dumps_raw, cbor_loads
from rivetkit.runtime import keys

__all__ = [
    "DEFAULT_MAX_HISTORY",
    "HISTORY_PREFIX",
    "MAX_HISTORY",
    "MAX_NAME_BYTES",
    "MIN_INTERVAL",
    "RECURRING_ID_PREFIX",
    "RECURRING_PREFIX",
    "RESULT_ERROR",
    "RESULT_OK",
    "RESULT_RUNNING",
    "RESULT_SKIPPED",
    "HistoryEntry",
    "RecurringRun",
    "RecurringSchedule",
    "ScheduledEvent",
    "check_max_history",
    "check_name",
    "history_prefix",
    "next_cron",
    "next_every",
    "one_shot_info",
    "schedule_error",
    "trigger_ms",
]

#: ``[8, 1] + name``: a recurring schedule.
RECURRING_PREFIX = keys.RECURRING_PREFIX + b"\x01"
#: ``[8, 2] + name + 0x00 + u64be(seq)``: one history row.
HISTORY_PREFIX = keys.RECURRING_PREFIX + b"\x02"
MIN_INTERVAL = 5.0
DEFAULT_MAX_HISTORY = 100
MAX_HISTORY = 1000
MAX_NAME_BYTES = 128
RECURRING_ID_PREFIX = "cron:"

RESULT_RUNNING = "running"
RESULT_OK = "ok"
RESULT_ERROR = "error"
RESULT_SKIPPED = "skipped"


def schedule_error(code: str, message: str, metadata: Any = None) -> RivetError:
    """An error of group ``schedule``."""
    return RivetError("schedule", code, message, metadata=metadata)


class ScheduledEvent(NamedTuple):
    """A scheduled action as ``get``/``list`` show it."""

    id: str
    #: ``at`` (one-shot), ``cron`` or ``every``.
    kind: str
    action: str
    args: list[Any]
    #: When it fires next, epoch seconds.
    next_at: float
    #: The schedule's name (recurring only).
    name: str | None = None
    expression: str | None = None
    timezone: str | None = None
    interval: float | None = None


class HistoryEntry(NamedTuple):
    """One run of a recurring schedule."""

    schedule: str
    scheduled_at: float
    fired_at: float
    finished_at: float | None
    result: str
    error: dict[str, Any] | None


class RecurringSchedule:
    """A recurring schedule (cron or every) as stored under ``[8, 1] + name``."""

    __slots__ = (
        "action",
        "args",
        "expression",
        "interval",
        "last_started_at",
        "max_history",
        "name",
        "next_at",
        "seq",
        "timezone",
    )

    def __init__(self, data: dict[str, Any]) -> None:
        self.name: str = data["name"]
        self.action: str = data["action"]
        self.args: bytes = data["args"]
        self.expression: str | None = data.get("expression")
        self.timezone: str | None = data.get("timezone")
        self.interval: float | None = data.get("interval")
        self.max_history: int = data.get("max_history", DEFAULT_MAX_HISTORY)
        self.next_at: float = data["next_at"]
        self.last_started_at: float | None = data.get("last_started_at")
        self.seq: int = data.get("seq", 0)

    def to_bytes(self) -> bytes:
        """The stored CBOR map."""
        return cbor_dumps_raw(
            {
                "name": self.name,
                "action": self.action,
                "args": self.args,
                "expression": self.expression,
                "timezone": self.timezone,
                "interval": self.interval,
                "max_history": self.max_history,
                "next_at": self.next_at,
                "last_started_at": self.last_started_at,
                "seq": self.seq,
            }
        )

    def key(self) -> bytes:
        """Its KV key."""
        return RECURRING_PREFIX + self.name.encode()

    def info(self) -> ScheduledEvent:
        """How ``get``/``list`` show it."""
        return ScheduledEvent(
            id=RECURRING_ID_PREFIX + self.name,
            kind="cron" if self.expression is not None else "every",
            action=self.action,
            args=list(cbor_loads(self.args)) if self.args else [],
            next_at=self.next_at,
            name=self.name,
            expression=self.expression,
            timezone=self.timezone,
            interval=self.interval,
        )


class RecurringRun:
    """One fire of a recurring schedule: its history row (``seq``) and whether it ran."""

    __slots__ = ("recurring", "row", "seq", "skipped")

    def __init__(
        self, recurring: RecurringSchedule, seq: int, row: dict[str, Any], skipped: bool
    ) -> None:
        self.recurring = recurring
        self.seq = seq
        self.row = row
        self.skipped = skipped

    def history_key(self) -> bytes:
        """The KV key of this run's history row."""
        return history_prefix(self.recurring.name) + self.seq.to_bytes(8, "big")


def history_prefix(name: str) -> bytes:
    """The KV prefix of the history rows of schedule ``name``."""
    return HISTORY_PREFIX + name.encode() + b"\x00"


def trigger_ms(seconds: float) -> int:
    """A recurring schedule's trigger in whole epoch milliseconds (rounded up; inf: never)."""
    if math.isinf(seconds):
        return 2**63 - 1
    return math.ceil(seconds * 1000 - 1e-6)


def check_name(name: Any) -> str:
    """``name`` if it is a valid schedule name, else ``schedule.invalid_name``."""
    if not isinstance(name, str) or not 1 <= len(name.encode()) <= MAX_NAME_BYTES:
        raise schedule_error(
            "invalid_name",
            f"schedule names are 1 to {MAX_NAME_BYTES} UTF-8 bytes, got {name!r}",
        )
    return name


def check_max_history(value: Any) -> int:
    """``value`` if it is a valid ``max_history``, else ``schedule.invalid_max_history``."""
    if type(value) is not int or not 0 <= value <= MAX_HISTORY:
        raise schedule_error(
            "invalid_max_history", f"max_history must be an int in 0..{MAX_HISTORY}, got {value!r}"
        )
    return value


def _zone(name: Any) -> zoneinfo.ZoneInfo:
    if not isinstance(name, str):
        raise schedule_error("invalid_timezone", f"unknown timezone {name!r}")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise schedule_error("invalid_timezone", f"unknown timezone {name!r}") from None


def next_cron(expression: str, timezone: str, after: float) -> float:
    """The first time strictly after ``after`` (epoch seconds) that ``expression`` matches."""
    # Imported on first use: most actors never use cron.
    from croniter import croniter  # type: ignore[import-untyped]

    zone = _zone(timezone)
    if not isinstance(expression, str) or len(expression.split()) != 5:
        raise schedule_error(
            "invalid_cron_expression", f"a cron expression has 5 fields, got {expression!r}"
        )
    try:
        base = _dt.datetime.fromtimestamp(after, zone)
        return float(croniter(expression, base).get_next(float))
    except (ValueError, KeyError, TypeError) as exc:
        raise schedule_error(
            "invalid_cron_expression", f"invalid cron expression {expression!r}: {exc}"
        ) from None


def next_every(trigger: float, interval: float, now: float) -> float:
    """The next slot after a trigger at ``trigger``; missed slots are skipped, not replayed."""
    if now < trigger + interval:
        return trigger + interval
    elapsed = now - trigger
    return trigger + interval * (math.floor(elapsed / interval) + 1)


def one_shot_info(event: ScheduleEvent) -> ScheduledEvent:
    """How ``get``/``list`` show a one-shot event of the snapshot."""
    return ScheduledEvent(
        id=event.event_id,
        kind="at",
        action=event.action,
        args=list(cbor_loads(event.args)) if event.args else [],
        next_at=event.timestamp / 1000,
    )
