"""Schedules and alarms against a fake clock: one-shot events, cron and every, history, errors.

Time is a :class:`FakeClock` given to ``setup_runtime``: advancing it and awaiting
``driver.poll_alarms()`` fires what is due (the driver's one alarm per actor), so nothing here
waits for wall-clock time except the short idle timeout that puts actors to sleep.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from typing import Any

import pytest

from conftest import eventually
from rivetkit import ActorOptions, RivetError, actor, setup
from rivetkit.runtime import schedule as schedule_mod
from rivetkit.runtime.context import ActorContext
from rivetkit.runtime.instance import ActorInstance
from rivetkit.testing import RuntimeClient, setup_runtime

pytestmark = pytest.mark.asyncio

#: 2024-01-01T00:00:30Z: half a minute past a round hour (cron tests rely on it).
T0 = 1_704_067_230.0


class FakeClock:
    """Epoch seconds that move only when told."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def tick(client: RuntimeClient, clock: FakeClock, seconds: float) -> None:
    """Move the clock and wait until the alarms due by then have been handled."""
    clock.advance(seconds)
    await client.runtime.driver.poll_alarms()  # type: ignore[attr-defined]


async def wait_asleep(client: RuntimeClient, actor_id: str) -> None:
    placement = client.runtime.driver.placement  # type: ignore[attr-defined]
    await eventually(lambda: actor_id not in placement.loaded())


#: Gates for actions that wait (keyed by name).
GATES: dict[str, asyncio.Event] = {}


def build(options: ActorOptions | None = None, name: str = "sched") -> Any:
    a = actor(name, state={"log": []}, options=options or ActorOptions(sleep_timeout=0.05))

    @a.action
    async def remind(c: ActorContext, seconds: float, text: str) -> str:
        return await c.schedule.after(seconds, "fire", text)

    @a.action
    async def remind_at(c: ActorContext, when: Any, action: str, *args: Any) -> str:
        return await c.schedule.at(when, action, *args)

    @a.action
    def fire(c: ActorContext, text: str) -> None:
        c.state["log"].append(text)

    @a.action
    async def slow(c: ActorContext, text: str) -> None:
        c.state["log"].append(f"{text}:start")
        await GATES.setdefault(text, asyncio.Event()).wait()
        c.state["log"].append(f"{text}:end")

    @a.action
    def boom(c: ActorContext) -> None:
        raise RivetError("user", "boom", "it broke")

    @a.action
    def log(c: ActorContext) -> list[str]:
        return list(c.state["log"])

    @a.action
    def generation(c: ActorContext) -> int:
        return c.generation

    @a.action
    async def cancel(c: ActorContext, event_id: str) -> bool:
        return await c.schedule.cancel(event_id)

    @a.action
    def get(c: ActorContext, event_id: str) -> Any:
        found = c.schedule.get(event_id)
        return None if found is None else found._asdict()

    @a.action
    def listing(c: ActorContext) -> list[dict[str, Any]]:
        return [item._asdict() for item in c.schedule.list()]

    @a.action
    async def cron(c: ActorContext, name: str, expression: str, action: str, *args: Any) -> str:
        return await c.schedule.cron(name, expression, action, *args)

    @a.action
    async def cron_tz(c: ActorContext, name: str, expression: str, tz: Any) -> str:
        return await c.schedule.cron(name, expression, "fire", name, timezone=tz)

    @a.action
    async def every(c: ActorContext, name: str, seconds: Any, action: str, *args: Any) -> str:
        return await c.schedule.every(name, seconds, action, *args)

    @a.action
    async def every_hist(
        c: ActorContext, name: str, seconds: float, action: str, max_history: Any
    ) -> str:
        return await c.schedule.every(name, seconds, action, name, max_history=max_history)

    @a.action
    async def delete(c: ActorContext, name: str) -> bool:
        return await c.schedule.delete(name)

    @a.action
    async def history(c: ActorContext, name: str, limit: int = 20) -> list[dict[str, Any]]:
        return [entry._asdict() for entry in await c.schedule.history(name, limit=limit)]

    @a.action
    def go_to_sleep(c: ActorContext) -> None:
        c.sleep()

    return a


def instance_of(client: RuntimeClient, actor_id: str) -> ActorInstance:
    return client.runtime.instances[actor_id]


# -- one-shot events ---------------------------------------------------------------------------


async def test_reminder_fires_after_the_actor_went_to_sleep() -> None:
    clock = FakeClock()
    async with setup_runtime(setup(use=[build()]), clock=clock.time) as client:
        handle = client.sched.get_or_create("r")
        actor_id = await handle.resolve()
        event_id = await handle.remind(60, "wake up")
        assert (await handle.get(event_id))["next_at"] == T0 + 60
        await wait_asleep(client, actor_id)  # idle for 0.05 s: asleep, alarm still armed
        driver = client.runtime.driver
        assert actor_id not in client.runtime.instances
        assert driver.alarms.get(actor_id) == int((T0 + 60) * 1000)
        await tick(client, clock, 59)
        assert actor_id not in client.runtime.instances  # not due yet: still asleep
        await tick(client, clock, 1)
        # The alarm woke the actor (a new generation) and ran the action.
        instance = instance_of(client, actor_id)
        assert instance.state["log"] == ["wake up"] and instance.generation == 2
        assert await handle.get(event_id) is None
        assert driver.alarms.get(actor_id) is None  # nothing left to wake it for
        await wait_asleep(client, actor_id)
        assert await handle.log() == ["wake up"]


async def test_at_accepts_datetimes_and_epoch_seconds() -> None:
    clock = FakeClock()
    async with setup_runtime(setup(use=[build()]), clock=clock.time) as client:
        handle = client.sched.get_or_create("at")
        actor_id = await handle.resolve()
        when = dt.datetime.fromtimestamp(T0 + 10, dt.timezone.utc)
        await handle.remind_at(when, "fire", "datetime")
        await handle.remind_at(T0 + 5, "fire", "epoch")
        await handle.remind_at(T0 - 100, "fire", "past")  # overdue: runs at once
        await eventually(lambda: instance_of(client, actor_id).state["log"] == ["past"])
        await tick(client, clock, 10)
        assert await handle.log() == ["past", "epoch", "datetime"]


async def test_cancel_get_list() -> None:
    clock = FakeClock()
    async with setup_runtime(setup(use=[build()]), clock=clock.time) as client:
        handle = client.sched.get_or_create("c")
        actor_id = await handle.resolve()
        keep = await handle.remind(20, "kept")
        drop = await handle.remind(10, "dropped")
        info = await handle.get(drop)
        assert info == {
            "id": drop,
            "kind": "at",
            "action": "fire",
            "args": ["dropped"],
            "next_at": T0 + 10,
            "name": None,
            "expression": None,
            "timezone": None,
            "interval": None,
        }
        assert [item["id"] for item in await handle.listing()] == [drop, keep]
        assert client.runtime.driver.alarms.get(actor_id) == int((T0 + 10) * 1000)
        assert await handle.cancel(drop) is True
        assert await handle.cancel(drop) is False
        assert await handle.cancel("no-such-id") is False
        assert await handle.get(drop) is None
        # The alarm moved to the remaining event.
        assert client.runtime.driver.alarms.get(actor_id) == int((T0 + 20) * 1000)
        await tick(client, clock, 15)
        assert await handle.log() == []
        await tick(client, clock, 5)
        assert await handle.log() == ["kept"]
        assert await handle.listing() == []
        await handle.cancel(await handle.remind(5, "late"))
        assert client.runtime.driver.alarms.get(actor_id) is None
        await tick(client, clock, 10)
        assert await handle.log() == ["kept"]


async def test_many_due_events_run_in_trigger_order() -> None:
    clock = FakeClock()
    options = ActorOptions(sleep_timeout=0.05, max_schedules=500)
    async with setup_runtime(setup(use=[build(options)]), clock=clock.time) as client:
        handle = client.sched.get_or_create("order")
        actor_id = await handle.resolve()
        # Made out of order; some share a millisecond (those keep their creation order).
        offsets = [(i * 37) % 100 + 1 for i in range(100)] + [50, 50, 50]
        for i, offset in enumerate(offsets):
            await handle.remind_at(T0 + offset, "fire", f"{offset:03d}-{i:03d}")
        await wait_asleep(client, actor_id)
        await tick(client, clock, 50)  # the first half, in one alarm
        log = await handle.log()
        assert log == sorted(log) and len(log) == 53
        await tick(client, clock, 1000)
        log = await handle.log()
        assert log == sorted(log) and len(log) == len(offsets)


async def test_a_failing_action_does_not_stop_the_others() -> None:
    clock = FakeClock()
    async with setup_runtime(setup(use=[build()]), clock=clock.time) as client:
        handle = client.sched.get_or_create("fail")
        await handle.remind_at(T0 + 1, "boom")
        await handle.remind_at(T0 + 2, "fire", "a")
        await handle.remind_at(T0 + 3, "no_such_action")
        await handle.remind_at(T0 + 4, "fire", "b")
        await tick(client, clock, 10)
        assert await handle.log() == ["a", "b"]
        assert await handle.listing() == []  # claimed even when they failed: no retry


async def test_due_events_are_claimed_once_by_concurrent_runs() -> None:
    clock = FakeClock()
    async with setup_runtime(setup(use=[build()]), clock=clock.time) as client:
        handle = client.sched.get_or_create("claim")
        actor_id = await handle.resolve()
        for i in range(20):
            await handle.remind(1 + i / 10, str(i))
        await handle.every("tick", 5, "fire", "tick")
        instance = instance_of(client, actor_id)
        clock.advance(10)
        counts = await asyncio.gather(
            *(instance.schedule.run_due() for _ in range(5)),
            instance.run_due_schedules(),
            client.runtime.driver.poll_alarms(),
        )
        assert sum(c for c in counts if c) <= 21  # the rest went to the other paths
        log = await handle.log()
        assert sorted(log) == sorted([*map(str, range(20)), "tick"])
        assert len(log) == 21


async def test_overdue_events_run_right_after_a_wake() -> None:
    clock = FakeClock()
    async with setup_runtime(setup(use=[build()]), clock=clock.time) as client:
        handle = client.sched.get_or_create("overdue")
        actor_id = await handle.resolve()
        await handle.remind(30, "late")
        await wait_asleep(client, actor_id)
        clock.advance(60)  # no poll: the next request wakes it and drains what is overdue
        assert await handle.generation() == 2
        await eventually(lambda: instance_of(client, actor_id).state["log"] == ["late"])


async def test_schedules_share_only_an_empty_recurring_dict(tmp_path: Any) -> None:
    # No recurring dict per actor until it has one; the shared empty one stays empty, also
    # when a woken actor loads its recurring schedules.
    clock = FakeClock()
    registry = setup(use=[build()])
    async with setup_runtime(registry, tmp_path, clock=clock.time) as client:
        plain = client.sched.get_or_create("plain")
        ticking = client.sched.get_or_create("ticking")
        await plain.remind(100, "one-shot")
        await ticking.every("beat", 60, "fire", "beat")
        plain_schedule = instance_of(client, await plain.resolve()).schedule
        ticking_schedule = instance_of(client, await ticking.resolve()).schedule
        assert plain_schedule._recurring is schedule_mod._NO_RECURRING
        assert list(ticking_schedule._recurring) == ["beat"]
        actor_id = await ticking.resolve()
    async with setup_runtime(registry, tmp_path, clock=clock.time) as client:
        assert await client.sched.get_or_create("ticking").resolve() == actor_id
        assert await client.sched.get_or_create("ticking").delete("beat") is True
        assert not schedule_mod._NO_RECURRING


async def test_schedules_survive_a_restart(tmp_path: Any) -> None:
    clock = FakeClock()
    registry = setup(use=[build()])
    async with setup_runtime(registry, tmp_path, clock=clock.time) as client:
        handle = client.sched.get_or_create("restart")
        actor_id = await handle.resolve()
        await handle.remind(100, "one-shot")
        await handle.every("beat", 60, "fire", "beat")
    clock.advance(100)
    async with setup_runtime(registry, tmp_path, clock=clock.time) as client:
        # Nobody calls the actor: the stored alarm wakes it.
        await client.runtime.driver.poll_alarms()
        await eventually(lambda: actor_id in client.runtime.instances)
        await eventually(
            lambda: sorted(instance_of(client, actor_id).state["log"]) == ["beat", "one-shot"]
        )


async def test_max_schedules_counts_one_shot_and_recurring() -> None:
    clock = FakeClock()
    options = ActorOptions(sleep_timeout=30, max_schedules=3)
    async with setup_runtime(setup(use=[build(options)]), clock=clock.time) as client:
        handle = client.sched.get_or_create("max")
        await handle.remind(10, "a")
        await handle.every("e", 10, "fire", "e")
        await handle.cron("c", "* * * * *", "fire", "c")
        for attempt in (
            handle.remind(10, "b"),
            handle.every("e2", 10, "fire", "x"),
            handle.cron("c2", "* * * * *", "fire", "x"),
        ):
            with pytest.raises(RivetError) as caught:
                await attempt
            assert (caught.value.group, caught.value.code) == ("schedule", "max_schedules_exceeded")
        # Re-setting an existing recurring schedule is not a new one.
        await handle.every("e", 20, "fire", "e")
        assert await handle.delete("c") is True
        await handle.remind(10, "b")


# -- cron and every ----------------------------------------------------------------------------


async def test_every_runs_and_missed_slots_jump_ahead() -> None:
    clock = FakeClock()
    async with setup_runtime(setup(use=[build()]), clock=clock.time) as client:
        handle = client.sched.get_or_create("every")
        actor_id = await handle.resolve()
        assert await handle.every("beat", 10, "fire", "beat") == "cron:beat"
        info = await handle.get("cron:beat")
        assert (info["kind"], info["interval"], info["next_at"]) == ("every", 10.0, T0 + 10)
        await wait_asleep(client, actor_id)
        await tick(client, clock, 10)
        assert instance_of(client, actor_id).state["log"] == ["beat"]
        assert (await handle.get("cron:beat"))["next_at"] == T0 + 20
        # 35 s later: three slots were missed; one run, then the next future slot.
        await tick(client, clock, 35)
        assert await handle.log() == ["beat", "beat"]
        assert (await handle.get("cron:beat"))["next_at"] == T0 + 50
        history = await handle.history("beat")
        assert [h["result"] for h in history] == ["ok", "ok"]
        assert [h["scheduled_at"] for h in history] == [T0 + 20, T0 + 10]  # newest first
        assert [h["fired_at"] for h in history] == [T0 + 45, T0 + 10]
        assert all(h["finished_at"] is not None and h["error"] is None for h in history)
        # Re-setting with the same interval keeps the next trigger; a new one restarts it.
        await handle.every("beat", 10, "fire", "beat")
        assert (await handle.get("cron:beat"))["next_at"] == T0 + 50
        await handle.every("beat", 30, "fire", "beat")
        assert (await handle.get("cron:beat"))["next_at"] == T0 + 45 + 30


async def test_cron_next_triggers_and_timezones() -> None:
    clock = FakeClock()  # 2024-01-01 00:00:30 UTC
    async with setup_runtime(setup(use=[build()]), clock=clock.time) as client:
        handle = client.sched.get_or_create("cron")
        assert await handle.cron("five", "*/5 * * * *", "fire", "five") == "cron:five"
        info = await handle.get("cron:five")
        assert (info["kind"], info["expression"], info["timezone"]) == (
            "cron",
            "*/5 * * * *",
            "UTC",
        )
        assert info["next_at"] == T0 - 30 + 300  # 00:05:00
        # 09:00 in New York in January is 14:00 UTC.
        await handle.cron_tz("ny", "0 9 * * *", "America/New_York")
        ny = dt.datetime(2024, 1, 1, 14, 0, tzinfo=dt.timezone.utc).timestamp()
        assert (await handle.get("cron:ny"))["next_at"] == ny
        await tick(client, clock, 270)  # 00:05:00
        assert await handle.log() == ["five"]
        assert (await handle.get("cron:five"))["next_at"] == T0 - 30 + 600
        await tick(client, clock, 3600)  # 01:05:00: eleven fires missed, one run
        assert await handle.log() == ["five", "five"]
        assert (await handle.get("cron:five"))["next_at"] == T0 - 30 + 3900 + 300
        # Same expression: the next trigger is kept; the listing is soonest first.
        await handle.cron("five", "*/5 * * * *", "fire", "five")
        assert (await handle.get("cron:five"))["next_at"] == T0 - 30 + 4200
        assert [item["id"] for item in await handle.listing()] == ["cron:five", "cron:ny"]
        await tick(client, clock, ny - clock.now)
        assert (await handle.log())[-1] == "ny"


async def test_overlapping_runs_are_recorded_as_skipped() -> None:
    clock = FakeClock()
    GATES.pop("slowjob", None)
    async with setup_runtime(setup(use=[build()]), clock=clock.time) as client:
        handle = client.sched.get_or_create("overlap")
        actor_id = await handle.resolve()
        await handle.every("job", 5, "slow", "slowjob")
        clock.advance(5)
        first = client.runtime.driver.poll_alarms()
        await eventually(lambda: instance_of(client, actor_id).state["log"] == ["slowjob:start"])
        assert [h["result"] for h in await handle.history("job")] == ["running"]
        await tick(client, clock, 5)  # fires while the first run is still going
        await tick(client, clock, 5)
        assert [h["result"] for h in await handle.history("job")] == [
            "skipped",
            "skipped",
            "running",
        ]
        GATES["slowjob"].set()
        await first
        history = await handle.history("job")
        assert [h["result"] for h in history] == ["skipped", "skipped", "ok"]
        assert history[0]["fired_at"] == history[0]["finished_at"] == T0 + 15
        assert await handle.log() == ["slowjob:start", "slowjob:end"]
        await tick(client, clock, 5)  # the run is over: the next fire runs again
        assert [h["result"] for h in await handle.history("job", 1)] == ["ok"]
        assert (await handle.log())[-1] == "slowjob:end"


async def test_history_results_limits_and_max_history() -> None:
    clock = FakeClock()
    async with setup_runtime(setup(use=[build()]), clock=clock.time) as client:
        handle = client.sched.get_or_create("hist")
        await handle.every("bad", 5, "boom")
        await handle.every_hist("few", 5, "fire", 2)
        await handle.every_hist("none", 5, "fire", 0)
        for _ in range(4):
            await tick(client, clock, 5)
        bad = await handle.history("bad")
        assert [h["result"] for h in bad] == ["error"] * 4
        assert bad[0]["error"] == {"group": "user", "code": "boom", "message": "it broke"}
        assert len(await handle.history("bad", 2)) == 2
        assert [h["result"] for h in await handle.history("few")] == ["ok", "ok"]
        assert await handle.history("none") == []
        assert (await handle.log()).count("few") == 4
        assert (await handle.log()).count("none") == 4
        # Deleting a schedule deletes its history.
        assert await handle.delete("bad") is True
        assert await handle.delete("bad") is False
        assert await handle.history("bad") == []
        assert await handle.get("cron:bad") is None


async def test_recurring_schedule_of_a_missing_action_is_deleted() -> None:
    clock = FakeClock()
    async with setup_runtime(setup(use=[build()]), clock=clock.time) as client:
        handle = client.sched.get_or_create("gone")
        await handle.every("ghost", 5, "no_such_action")
        await tick(client, clock, 5)
        assert await handle.get("cron:ghost") is None
        assert await handle.cancel("cron:ghost") is False


async def test_interrupted_runs_are_marked_on_the_next_start() -> None:
    clock = FakeClock()
    GATES.pop("stuck", None)
    options = ActorOptions(sleep_timeout=30, sleep_grace_period=0.05)
    async with setup_runtime(setup(use=[build(options)]), clock=clock.time) as client:
        handle = client.sched.get_or_create("interrupt")
        actor_id = await handle.resolve()
        await handle.every("stuck", 5, "slow", "stuck")
        clock.advance(5)
        pending = client.runtime.driver.poll_alarms()
        await eventually(lambda: "stuck:start" in instance_of(client, actor_id).state["log"])
        await handle.go_to_sleep()  # the grace period (50 ms) cuts the run short
        await wait_asleep(client, actor_id)
        history = await handle.history("stuck")  # wakes it: leftover "running" rows fixed
        assert [h["result"] for h in history] == ["error"]
        assert history[0]["error"]["code"] == "interrupted"
        GATES["stuck"].set()
        await pending
        # The old generation's run finished after its stop: it records nothing more.
        assert [h["result"] for h in await handle.history("stuck")] == ["error"]


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda h: h.every("", 10, "fire"), "invalid_name"),
        (lambda h: h.every("x" * 129, 10, "fire"), "invalid_name"),
        (lambda h: h.every("é" * 65, 10, "fire"), "invalid_name"),  # 130 bytes
        (lambda h: h.cron("", "* * * * *", "fire"), "invalid_name"),
        (lambda h: h.cron("c", "not a cron", "fire"), "invalid_cron_expression"),
        (lambda h: h.cron("c", "61 * * * *", "fire"), "invalid_cron_expression"),
        (lambda h: h.cron("c", "* * * * * *", "fire"), "invalid_cron_expression"),
        (lambda h: h.cron("c", "* * *", "fire"), "invalid_cron_expression"),
        (lambda h: h.cron_tz("c", "* * * * *", "Mars/Olympus_Mons"), "invalid_timezone"),
        (lambda h: h.cron_tz("c", "* * * * *", ""), "invalid_timezone"),
        (lambda h: h.cron_tz("c", "* * * * *", 5), "invalid_timezone"),
        (lambda h: h.every("e", 4.999, "fire"), "invalid_interval"),
        (lambda h: h.every("e", 0, "fire"), "invalid_interval"),
        (lambda h: h.every("e", -10, "fire"), "invalid_interval"),
        (lambda h: h.every("e", math.nan, "fire"), "invalid_interval"),
        (lambda h: h.every("e", math.inf, "fire"), "invalid_interval"),
        (lambda h: h.every("e", True, "fire"), "invalid_interval"),
        (lambda h: h.every("e", "10", "fire"), "invalid_interval"),
        (lambda h: h.every_hist("e", 10, "fire", -1), "invalid_max_history"),
        (lambda h: h.every_hist("e", 10, "fire", 1001), "invalid_max_history"),
        (lambda h: h.every_hist("e", 10, "fire", 2.5), "invalid_max_history"),
        (lambda h: h.every_hist("e", 10, "fire", True), "invalid_max_history"),
    ],
)
async def test_invalid_recurring_schedules(call: Any, code: str) -> None:
    clock = FakeClock()
    async with setup_runtime(setup(use=[build()]), clock=clock.time) as client:
        handle = client.sched.get_or_create("invalid")
        with pytest.raises(RivetError) as caught:
            await call(handle)
        assert (caught.value.group, caught.value.code) == ("schedule", code)
        assert await handle.listing() == []
        # The boundaries themselves are accepted.
        await handle.every("x" * 128, 5, "fire")
        await handle.every_hist("h0", 5, "fire", 0)
        await handle.every_hist("h1000", 5, "fire", 1000)


async def test_destroyed_actor_schedules_never_fire() -> None:
    clock = FakeClock()
    async with setup_runtime(setup(use=[build()]), clock=clock.time) as client:
        handle = client.sched.get_or_create("doomed")
        actor_id = await handle.resolve()
        await handle.remind(10, "never")
        await handle.every("never-every", 5, "fire", "never")
        await client.runtime.driver.destroy_actor(actor_id)
        driver = client.runtime.driver
        assert driver.alarms.get(actor_id) is None
        rows = await driver.store.read(
            lambda db: db.execute(
                "SELECT alarm_ts, destroy_ts FROM actors WHERE actor_id = ?", (actor_id,)
            ).fetchall()
        )
        assert rows[0][0] is None and rows[0][1] is not None
        await tick(client, clock, 3600)
        assert actor_id not in client.runtime.instances
        assert await driver.kv_list(actor_id, b"", None) == []
        with pytest.raises(RivetError) as caught:
            await handle.log()
        assert (caught.value.group, caught.value.code) == ("actor", "not_found")


# -- examples/timer.py -------------------------------------------------------------------------


class Recorder:
    """A connection transport that keeps the events sent to it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, list[Any]]] = []

    def send_event(self, name: str, args: list[Any]) -> None:
        self.events.append((name, args))

    def close(self, reason: str | None) -> None:
        pass


async def test_timer_example() -> None:
    from server_actors import load_example

    registry = load_example("timer").registry
    clock = FakeClock()
    async with setup_runtime(registry, clock=clock.time) as client:
        handle = client.timer.get_or_create("example")
        actor_id = await handle.resolve()
        event_id = await handle.remindIn(30, "tea")
        assert isinstance(event_id, str) and await handle.fired() == []
        client.runtime.instances[actor_id].request_sleep()  # as its 1 s idle timeout would
        await wait_asleep(client, actor_id)
        await tick(client, clock, 30)
        assert await handle.fired() == ["tea"]
        # A connected client gets the "fired" event.
        instance = client.runtime.instances[actor_id]
        recorder = Recorder()
        conn = await instance.connect(None, transport=recorder)
        conn.subscribe("fired")
        await handle.remindIn(5, "coffee")
        await tick(client, clock, 5)
        assert recorder.events == [("fired", ["coffee"])]
        assert await handle.fired() == ["tea", "coffee"]
        await conn.disconnect()
