"""Scheduled actions (``c.schedule``): one-shot events, cron and every.

One-shot events live in the actor snapshot's ``scheduledEvents`` (actor-persist v4), exactly
as RivetKit stores them, so they move freely between RivetKit and us. Recurring schedules have
no place in RivetKit's KV layout; they live under our prefix ``[8]``:

* ``[8, 1] + name``: the schedule, a CBOR map (action, args as CBOR, cron expression and
  timezone or interval, max history, next trigger, last start);
* ``[8, 2] + name + 0x00 + u64be(seq)``: one history row, a CBOR map (scheduled/fired/finished
  times, result ``running``/``ok``/``error``/``skipped`` and the error).

Every mutation goes through one path (seed lesson 13): change, persist immediately, then push
the earliest trigger of all schedules to the driver as the actor's alarm. Due events are
claimed (removed and persisted) before their action runs, so each runs at most once; a failing
action is logged and does not stop the others.

The records, their validation and the cron/every cadence are in
:mod:`rivetkit.runtime.schedule_records`; this module runs them (:class:`ActorSchedule`).
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as _dt
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

from rivetkit.errors import RivetError
from rivetkit.protocol.actor_persist import ScheduleEvent
from rivetkit.protocol.values import cbor_dumps, cbor_dumps_raw, cbor_loads, cbor_loads_raw
from rivetkit.runtime.schedule_records import (
    DEFAULT_MAX_HISTORY,
    MIN_INTERVAL,
    RECURRING_ID_PREFIX,
    RECURRING_PREFIX,
    RESULT_ERROR,
    RESULT_OK,
    RESULT_RUNNING,
    RESULT_SKIPPED,
    HistoryEntry,
    RecurringRun,
    RecurringSchedule,
    ScheduledEvent,
    check_max_history,
    check_name,
    history_prefix,
    next_cron,
    next_every,
    one_shot_info,
    schedule_error,
    trigger_ms,
)
from rivetkit.traces import traced

__all__ = [
    "ActorSchedule",
    "HistoryEntry",
    "ScheduleOwner",
    "ScheduledEvent",
    "next_cron",
    "next_every",
    "schedule_error",
]

#: ``_pushed_alarm`` when the driver's alarm is not known (after it fired, or a failed push).
_UNKNOWN = -1

logger = logging.getLogger("rivetkit.schedule")


class ScheduleOwner(Protocol):
    """What the scheduler needs from its actor instance."""

    def scheduled_events(self) -> list[ScheduleEvent]:
        """The one-shot events of the snapshot (sorted by time)."""
        ...

    async def replace_scheduled_events(self, events: list[ScheduleEvent]) -> None:
        """Set the snapshot's events and persist the snapshot now."""
        ...

    async def kv_get(self, keys: list[bytes]) -> list[bytes | None]: ...

    async def kv_write(
        self, puts: list[tuple[bytes, bytes]] = ..., deletes: list[bytes] = ...
    ) -> None: ...

    async def kv_list_prefix(self, prefix: bytes) -> list[tuple[bytes, bytes]]: ...

    async def push_alarm(self, when_ms: int | None) -> None:
        """Make the driver wake the actor at ``when_ms`` (None: no alarm)."""
        ...

    def dispatch_scheduled(self, action: str, args: list[Any]) -> Awaitable[Any]:
        """Run an action as a schedule does (same rules as a client's action)."""
        ...

    @property
    def max_schedules(self) -> int: ...


# The recurring schedules of every schedule without any (never written: see ActorSchedule).
_NO_RECURRING: Final[dict[str, RecurringSchedule]] = {}


class ActorSchedule:
    """``c.schedule``: run actions later, once or on a cadence."""

    __slots__ = (
        "_clock",
        "_closed",
        "_owner",
        "_pushed_alarm",
        "_recurring",
        "_running",
        "workflow_wake_ms",
    )

    def __init__(self, owner: ScheduleOwner, clock: Callable[[], float]) -> None:
        self._owner = owner
        self._clock = clock
        # The recurring schedules by name; the shared empty dict until the first is added
        # (no empty dict per actor): written only through _own_recurring.
        self._recurring: dict[str, RecurringSchedule] = _NO_RECURRING
        #: Names of the recurring schedules whose action is running now (made on first use).
        self._running: set[str] | None = None
        self._pushed_alarm: int | None = None
        self._closed = False
        #: When the actor's workflow must wake (epoch ms; None: no timer), shared with the
        #: schedules' alarm: the driver's one alarm per actor (rivetkit.workflow.driver).
        self.workflow_wake_ms: int | None = None

    def _own_recurring(self) -> dict[str, RecurringSchedule]:
        """The recurring schedules' dict, made this schedule's own (to write to it)."""
        recurring = self._recurring
        if recurring is _NO_RECURRING:
            recurring = self._recurring = {}
        return recurring

    def close(self) -> None:
        """The actor stopped: runs still going (cut by the grace deadline) record nothing
        more, and :meth:`run_due` claims nothing."""
        self._closed = True

    async def load(self, last_pushed_alarm: int | None, *, empty: bool = False) -> None:
        """Read the recurring schedules (called when the actor starts; ``empty``: the KV is
        known empty, nothing to read)."""
        self._pushed_alarm = last_pushed_alarm
        if empty:
            return
        for _, value in await self._owner.kv_list_prefix(RECURRING_PREFIX):
            try:
                recurring = RecurringSchedule(cbor_loads_raw(value))
            except Exception:
                logger.exception("dropping an unreadable recurring schedule")
                continue
            self._own_recurring()[recurring.name] = recurring

    # -- one-shot ----------------------------------------------------------------------------

    def _count(self) -> int:
        return len(self._owner.scheduled_events()) + len(self._recurring)

    def _check_room(self) -> None:
        limit = self._owner.max_schedules
        if self._count() >= limit:
            raise schedule_error(
                "max_schedules_exceeded",
                f"the actor already has {limit} schedules",
                metadata={"limit": limit},
            )

    async def after(self, seconds: float, action: str, *args: Any) -> str:
        """Run ``action(*args)`` in ``seconds`` seconds; returns the event id."""
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise TypeError(f"seconds must be a number >= 0, got {seconds!r}")
        return await self.at(self._clock() + seconds, action, *args)

    async def at(self, when: float | _dt.datetime, action: str, *args: Any) -> str:
        """Run ``action(*args)`` at ``when`` (a datetime or epoch seconds); returns the id."""
        if isinstance(when, _dt.datetime):
            if when.tzinfo is None:
                raise TypeError("schedule.at needs an aware datetime (with a tzinfo)")
            timestamp = when.timestamp()
        elif isinstance(when, (int, float)) and not isinstance(when, bool):
            timestamp = float(when)
        else:
            raise TypeError(f"when must be a datetime or epoch seconds, got {when!r}")
        if not isinstance(action, str) or not action:
            raise TypeError("action must be the action's name")
        self._check_room()
        event = ScheduleEvent(
            event_id=str(uuid.uuid4()),
            timestamp=int(timestamp * 1000),
            action=action,
            args=cbor_dumps(list(args)),
        )
        # Stable: events due at the same millisecond keep the order they were made in.
        events = sorted([*self._owner.scheduled_events(), event], key=lambda e: e.timestamp)
        await self._owner.replace_scheduled_events(events)
        await self.sync_alarm()
        return event.event_id

    async def cancel(self, event_id: str) -> bool:
        """Cancel a one-shot event or (``cron:NAME``) a recurring schedule."""
        if event_id.startswith(RECURRING_ID_PREFIX):
            return await self.delete(event_id[len(RECURRING_ID_PREFIX) :])
        events = self._owner.scheduled_events()
        kept = [e for e in events if e.event_id != event_id]
        if len(kept) == len(events):
            return False
        await self._owner.replace_scheduled_events(kept)
        await self.sync_alarm()
        return True

    def get(self, event_id: str) -> ScheduledEvent | None:
        """The event or recurring schedule with this id, or None."""
        if event_id.startswith(RECURRING_ID_PREFIX):
            recurring = self._recurring.get(event_id[len(RECURRING_ID_PREFIX) :])
            return None if recurring is None else recurring.info()
        for event in self._owner.scheduled_events():
            if event.event_id == event_id:
                return one_shot_info(event)
        return None

    def recurring(self, name: str) -> RecurringSchedule | None:
        """The record of recurring schedule ``name`` (with its ``last_started_at`` and
        ``max_history``, which the inspector shows), or None."""
        return self._recurring.get(name)

    def list(self) -> builtins.list[ScheduledEvent]:
        """Every schedule, soonest first."""
        items = [one_shot_info(e) for e in self._owner.scheduled_events()]
        items += [r.info() for r in self._recurring.values()]
        return sorted(items, key=lambda item: item.next_at)

    # -- recurring ---------------------------------------------------------------------------

    async def cron(
        self,
        name: str,
        expression: str,
        action: str,
        *args: Any,
        timezone: str = "UTC",
        max_history: int = DEFAULT_MAX_HISTORY,
    ) -> str:
        """Run ``action(*args)`` whenever the 5-field cron ``expression`` matches."""
        check_name(name)
        check_max_history(max_history)
        first = next_cron(expression, timezone, self._clock())
        existing = self._recurring.get(name)
        keep = (
            existing is not None
            and existing.expression == expression
            and existing.timezone == timezone
        )
        return await self._set_recurring(
            name,
            action,
            args,
            max_history,
            next_at=existing.next_at if keep and existing else first,
            expression=expression,
            timezone=timezone,
        )

    async def every(
        self,
        name: str,
        seconds: float,
        action: str,
        *args: Any,
        max_history: int = DEFAULT_MAX_HISTORY,
    ) -> str:
        """Run ``action(*args)`` every ``seconds`` (at least 5 s)."""
        check_name(name)
        check_max_history(max_history)
        if (
            not isinstance(seconds, (int, float))
            or isinstance(seconds, bool)
            or not math.isfinite(seconds)
            or seconds < MIN_INTERVAL
        ):
            raise schedule_error(
                "invalid_interval",
                f"the interval must be at least {MIN_INTERVAL:g} s, got {seconds!r}",
            )
        existing = self._recurring.get(name)
        keep = existing is not None and existing.interval == float(seconds)
        return await self._set_recurring(
            name,
            action,
            args,
            max_history,
            next_at=existing.next_at if keep and existing else self._clock() + seconds,
            interval=float(seconds),
        )

    async def _set_recurring(
        self,
        name: str,
        action: str,
        args: tuple[Any, ...],
        max_history: int,
        *,
        next_at: float,
        expression: str | None = None,
        timezone: str | None = None,
        interval: float | None = None,
    ) -> str:
        if not isinstance(action, str) or not action:
            raise TypeError("action must be the action's name")
        if name not in self._recurring:
            self._check_room()
        previous = self._recurring.get(name)
        recurring = RecurringSchedule(
            {
                "name": name,
                "action": action,
                "args": cbor_dumps(list(args)),
                "expression": expression,
                "timezone": timezone,
                "interval": interval,
                "max_history": max_history,
                "next_at": next_at,
                "last_started_at": previous.last_started_at if previous else None,
                "seq": previous.seq if previous else 0,
            }
        )
        self._own_recurring()[name] = recurring
        await self._owner.kv_write(puts=[(recurring.key(), recurring.to_bytes())])
        if max_history == 0:
            await self._clear_history(name)
        await self.sync_alarm()
        return RECURRING_ID_PREFIX + name

    async def delete(self, name: str) -> bool:
        """Delete a recurring schedule and its history."""
        recurring = self._recurring.pop(name, None)
        if recurring is None:
            return False
        await self._owner.kv_write(deletes=[recurring.key()])
        await self._clear_history(name)
        await self.sync_alarm()
        return True

    async def _clear_history(self, name: str) -> None:
        rows = await self._owner.kv_list_prefix(history_prefix(name))
        if rows:
            await self._owner.kv_write(deletes=[key for key, _ in rows])

    async def history(self, name: str, *, limit: int = 20) -> builtins.list[HistoryEntry]:
        """The latest runs of a recurring schedule (at most its ``max_history``), newest
        first."""
        recurring = self._recurring.get(name)
        if recurring is not None:
            limit = min(limit, recurring.max_history)
        if limit <= 0:
            return []
        rows = await self._owner.kv_list_prefix(history_prefix(name))
        entries = []
        for _, value in reversed(rows[-limit:]):
            data = cbor_loads_raw(value)
            entries.append(
                HistoryEntry(
                    name,
                    data["scheduled_at"],
                    data["fired_at"],
                    data.get("finished_at"),
                    data["result"],
                    data.get("error"),
                )
            )
        return entries

    async def _prune_history(self, recurring: RecurringSchedule) -> None:
        """Every 10 runs, delete the rows beyond ``max_history`` (oldest first)."""
        if recurring.seq % 10 or self._closed:
            return
        rows = await self._owner.kv_list_prefix(history_prefix(recurring.name))
        extra = len(rows) - recurring.max_history
        if extra > 0:
            await self._owner.kv_write(deletes=[k for k, _ in rows[:extra]])

    # -- alarms and due events ---------------------------------------------------------------

    def next_trigger_ms(self) -> int | None:
        """The earliest time any schedule is due, epoch milliseconds (the alarm to push).

        Due-ness is decided on the same integer milliseconds (:meth:`run_due`), so an alarm
        that fired at ``when_ms`` always finds the schedule it was pushed for due.
        """
        events = self._owner.scheduled_events()
        times = [events[0].timestamp] if events else []
        if self._recurring:
            times += [
                trigger_ms(r.next_at) for r in self._recurring.values() if r.next_at != math.inf
            ]
        if self.workflow_wake_ms is not None:
            times.append(self.workflow_wake_ms)
        return min(times, default=None)

    def next_trigger(self) -> float | None:
        """The earliest time any schedule is due, epoch seconds."""
        when_ms = self.next_trigger_ms()
        return None if when_ms is None else when_ms / 1000

    def alarm_fired(self) -> None:
        """The driver fired (and dropped) the pushed alarm: the next sync pushes again."""
        self._pushed_alarm = _UNKNOWN

    async def sync_alarm(self) -> float | None:
        """Push the earliest trigger to the driver when it changed; return
        :meth:`next_trigger` as it is afterwards."""
        when_ms = self.next_trigger_ms()
        if when_ms != self._pushed_alarm:
            self._pushed_alarm = when_ms
            try:
                await self._owner.push_alarm(when_ms)
            except BaseException:
                self._pushed_alarm = _UNKNOWN  # unknown: the next sync pushes again
                raise
            when_ms = self.next_trigger_ms()  # it may have changed during the push
        return None if when_ms is None else when_ms / 1000

    async def run_due(self) -> int:
        """Claim every due schedule, push the next alarm, then run the claimed actions.

        Claiming happens before the first ``await`` (so two concurrent calls never claim
        the same event) and is persisted before anything runs: each one-shot event runs at
        most once, with no retry. Recurring schedules advance to their next slot (missed
        ``every`` slots are skipped, not replayed); a fire while the previous run of the
        same schedule is still going is recorded as ``skipped``. The actions then start in
        trigger order and run concurrently, like clients' actions; a failing one is logged
        (and recorded in the history) and does not stop the others. Returns how many
        schedules were due; returns once their actions have finished.
        """
        if self._closed:
            return 0
        now = self._clock()
        now_ms = int(now * 1000)
        owner = self._owner
        events = owner.scheduled_events()
        due = [e for e in events if e.timestamp <= now_ms]
        if due:
            claim: Awaitable[None] | None = owner.replace_scheduled_events(
                [e for e in events if e.timestamp > now_ms]
            )
        else:
            claim = None
        try:
            fires = [
                self._advance(r, now)
                for r in sorted(self._recurring.values(), key=lambda r: r.next_at)
                if trigger_ms(r.next_at) <= now_ms
            ]
        except BaseException:
            if claim is not None:
                await claim
            raise
        if claim is not None:
            await claim  # sets the owner's list before its first await: claimed
        if fires:
            puts: list[tuple[bytes, bytes]] = []
            for run in fires:
                puts.append((run.recurring.key(), run.recurring.to_bytes()))
                if run.recurring.max_history:
                    puts.append((run.history_key(), cbor_dumps_raw(run.row)))
            await owner.kv_write(puts=puts)
        await self.sync_alarm()  # before the actions run: an overlapping fire can happen
        if not due and not fires:
            return 0
        runs: list[Awaitable[Any]] = [
            self._run_one_shot(event.action, cbor_loads(event.args) if event.args else [])
            for event in due
        ]
        runs += [self._run_recurring(run) for run in fires if not run.skipped]
        if runs:
            await asyncio.gather(*(asyncio.ensure_future(run) for run in runs))
        for run in fires:
            if run.skipped:
                self._count_run("recurring", "skipped")
                await self._prune_history(run.recurring)
        return len(due) + len(fires)

    def _advance(self, recurring: RecurringSchedule, now: float) -> RecurringRun:
        """Move ``recurring`` to its next slot and note this fire (synchronous: a claim)."""
        scheduled_at = recurring.next_at
        if recurring.expression is not None:
            try:
                recurring.next_at = next_cron(
                    recurring.expression, recurring.timezone or "UTC", now
                )
            except RivetError:
                logger.exception("cron schedule %s cannot advance; paused", recurring.name)
                recurring.next_at = math.inf
        else:
            assert recurring.interval is not None
            recurring.next_at = next_every(scheduled_at, recurring.interval, now)
        recurring.seq += 1
        running = self._running
        if running is None:
            running = self._running = set()
        skipped = recurring.name in running
        if not skipped:
            running.add(recurring.name)
            recurring.last_started_at = now
        row: dict[str, Any] = {
            "scheduled_at": scheduled_at,
            "fired_at": now,
            "finished_at": now if skipped else None,
            "result": RESULT_SKIPPED if skipped else RESULT_RUNNING,
            "error": None,
        }
        return RecurringRun(recurring, recurring.seq, row, skipped)

    async def _run_one_shot(self, action: str, args: builtins.list[Any]) -> None:
        try:
            with traced(getattr(self._owner, "traces", None), "schedule", action):
                await self._owner.dispatch_scheduled(action, list(args))
        except Exception:
            self._count_run("once", "error")
            logger.exception("scheduled action %s failed", action)
        else:
            self._count_run("once", "ok")

    def _count_run(self, kind: str, outcome: str) -> None:
        metrics = getattr(self._owner, "metrics", None)
        if metrics is not None:
            metrics.schedule_run(kind, outcome)

    async def _run_recurring(self, run: RecurringRun) -> None:
        recurring = run.recurring
        name = recurring.name
        row = run.row
        args = list(cbor_loads(recurring.args)) if recurring.args else []
        try:
            spans = getattr(self._owner, "traces", None)
            with traced(spans, "schedule", recurring.action, {"rivet.schedule.id": name}):
                await self._owner.dispatch_scheduled(recurring.action, args)
        except Exception as exc:
            self._count_run("recurring", "error")
            row["result"] = RESULT_ERROR
            if isinstance(exc, RivetError):
                row["error"] = {"group": exc.group, "code": exc.code, "message": exc.message}
            else:
                row["error"] = {"group": "core", "code": "internal_error", "message": str(exc)}
            if isinstance(exc, RivetError) and exc.code == "action_not_found":
                # As RivetKit documents: a recurring job whose action is gone is deleted.
                logger.warning(
                    "recurring schedule %s: action %s does not exist; deleted",
                    name,
                    recurring.action,
                )
                self._end_run(name)
                if self._recurring.get(name) is recurring and not self._closed:
                    await self.delete(name)
                return
            logger.exception("recurring schedule %s failed", name)
        else:
            self._count_run("recurring", "ok")
            row["result"] = RESULT_OK
        finally:
            self._end_run(name)
        row["finished_at"] = self._clock()
        current = self._recurring.get(name)
        if current is not None and current.max_history and not self._closed:
            await self._owner.kv_write(puts=[(run.history_key(), cbor_dumps_raw(row))])
            await self._prune_history(current)

    def _end_run(self, name: str) -> None:
        if self._running is not None:
            self._running.discard(name)

    async def interrupted_runs(self) -> None:
        """Mark history rows left ``running`` by a crash as ``error``/``schedule.interrupted``."""
        for recurring in self._recurring.values():
            rows = await self._owner.kv_list_prefix(history_prefix(recurring.name))
            for key, value in rows[-5:]:
                data = cbor_loads_raw(value)
                if data.get("result") == RESULT_RUNNING:
                    data["result"] = RESULT_ERROR
                    data["error"] = {
                        "group": "schedule",
                        "code": "interrupted",
                        "message": "the actor stopped while the run was in progress",
                    }
                    await self._owner.kv_write(puts=[(key, cbor_dumps_raw(data))])
