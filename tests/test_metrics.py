"""Prometheus metrics: ``GET /metrics`` after a known workload on a real server (127.0.0.1),
parsed with ``prometheus_client.parser``; the actor-level route; the token; metrics off;
two runtimes in one process; the action recorder twins (``py``, ``cy``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

import rivetkit
from conftest import TWIN_IDS, eventually, twin
from rivetkit import ActorOptions, UserError, actor, setup
from rivetkit.client import Client, RetryOptions
from rivetkit.metrics import (
    UNKNOWN_ACTION,
    ActorMetrics,
    MetricsOptions,
    _action_stats_py,
    error_code,
)
from rivetkit.server import serve_in_background
from rivetkit.testing import setup_test

FAST_RETRY = RetryOptions(get_attempts=2, get_or_create_attempts=5, interval=0.05)

metered = actor(
    "metered",
    state={"n": 0, "fired": 0},
    options=ActorOptions(state_save_interval=0.01, sleep_timeout=600.0),
)


@metered.action
def inc(c: Any) -> int:
    c.state["n"] += 1
    return int(c.state["n"])


@metered.action
def fail(c: Any) -> None:
    raise UserError("refused", code="refused")


@metered.action
async def take(c: Any) -> Any:
    message = await c.queue.try_next("jobs", completable=True)
    if message is None:
        return None
    await message.complete({"done": message.body})
    return message.body


@metered.action
async def later(c: Any) -> str:
    return str(await c.schedule.after(0.0, "fire"))


@metered.action
def fire(c: Any) -> None:
    c.state["fired"] += 1


@metered.action
def fired(c: Any) -> int:
    return int(c.state["fired"])


@metered.action
def nap(c: Any) -> None:
    c.sleep()


other = actor("other", state={})


@other.action
def ping(c: Any) -> str:
    return "pong"


registry = setup(use=[metered, other])


def parse(text: str) -> dict[str, Any]:
    """Families by name (``prometheus_client`` strips ``_total`` from counter names)."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Any], sample: str, **labels: str) -> float:
    """The value of the sample ``sample`` whose labels include ``labels``."""
    family_name = sample
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if sample.endswith(suffix) and sample[: -len(suffix)] in families:
            family_name = sample[: -len(suffix)]
            break
    found = [
        s.value
        for s in families[family_name].samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (sample, labels, found)
    return float(found[0])


@pytest_asyncio.fixture
async def served(tmp_path: Any) -> AsyncIterator[tuple[Any, Client]]:
    async with (
        serve_in_background(registry, data_dir=tmp_path) as endpoint,
        Client(str(endpoint), encoding="json", retry=FAST_RETRY) as client,
    ):
        yield endpoint, client  # an Endpoint: a str with the served .app


async def scrape(endpoint: str, path: str = "/metrics", **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.get(endpoint + path, headers=headers)


@pytest.mark.asyncio
async def test_metrics_after_known_workload(served: tuple[str, Client]) -> None:
    endpoint, client = served
    handle = client.metered.get_or_create(["w"])
    actor_id = await handle.resolve()
    runtime = endpoint.app.runtime

    # Actions: 3 ok, 2 failed on purpose, 1 unknown name.
    for _ in range(3):
        await handle.inc()
    for _ in range(2):
        with pytest.raises(Exception, match="refused"):
            await handle.fail()
    with pytest.raises(Exception, match="not found"):
        await handle.action("noSuchAction")
    # Queue: two sends (HTTP), one completable receive + complete.
    await handle.send("jobs", 1)
    await handle.send("jobs", 2)
    assert await handle.take() == 1
    # A schedule run.
    await handle.later()
    await eventually(lambda: metered_fired(runtime, actor_id) == 1, timeout=20)
    # A live connection (WebSocket).
    async with handle.connect() as conn:
        assert await conn.inc() == 4
        response = await scrape(endpoint)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        families = parse(response.text)
        assert value(families, "rivetkit_actor_connections", actor_name="metered") == 1
    # Sleep, then wake with an action.
    await handle.nap()
    await eventually(lambda: actor_id not in runtime.instances, timeout=20)
    assert await handle.inc() == 5
    handle_metrics = runtime.metrics.actors["metered"]
    await eventually(lambda: handle_metrics.state_saves >= 2, timeout=20)
    # The server notices the client's close of the WebSocket in its own time.
    await eventually(lambda: handle_metrics.conns_closed == handle_metrics.conns_opened, timeout=20)

    families = parse((await scrape(endpoint)).text)

    info = families["rivetkit_info"].samples[0]
    assert info.name == "rivetkit_info" and info.value == 1
    assert info.labels["runtime"] == "rivetkit"
    assert info.labels["version"] == rivetkit.__version__
    assert info.labels["speedups"] == ("true" if rivetkit.SPEEDUPS else "false")
    assert info.labels["driver"] == "embedded"

    # Process-wide families of prometheus_client.
    assert "process_cpu_seconds" in families or "python_info" in families
    assert "python_gc_objects_collected" in families

    m = {"actor_name": "metered"}
    # inc: 5 calls (3 + 1 over the connection + 1 after the wake), fire: 1 scheduled run.
    assert value(families, "rivetkit_actor_actions_total", action="inc", outcome="ok", **m) == 5
    assert value(families, "rivetkit_actor_actions_total", action="fail", outcome="ok", **m) == 0
    assert value(families, "rivetkit_actor_actions_total", action="fail", outcome="error", **m) == 2
    assert (
        value(
            families, "rivetkit_actor_action_errors_total", action="fail", **m, code="user.refused"
        )
        == 2
    )
    assert (
        value(
            families,
            "rivetkit_actor_action_errors_total",
            action=UNKNOWN_ACTION,
            code="actor.action_not_found",
            **m,
        )
        == 1
    )
    assert value(families, "rivetkit_actor_actions_total", action="fire", outcome="ok", **m) == 1
    assert not any(
        s.labels.get("action") == "noSuchAction" for f in families.values() for s in f.samples
    )
    # The latency histogram: every call counted, buckets cumulative, sum positive.
    hist = families["rivetkit_actor_action_duration_seconds"]
    assert hist.type == "histogram"
    assert value(families, "rivetkit_actor_action_duration_seconds_count", action="inc", **m) == 5
    assert value(families, "rivetkit_actor_action_duration_seconds_count", action="fail", **m) == 2
    assert value(families, "rivetkit_actor_action_duration_seconds_sum", action="inc", **m) > 0
    buckets = [
        (s.labels["le"], s.value)
        for s in hist.samples
        if s.name.endswith("_bucket") and s.labels["action"] == "inc"
    ]
    assert buckets[-1] == ("+Inf", 5)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)

    # Lifecycle: created + woken once after the nap; one sleep; live again.
    assert value(families, "rivetkit_actor_wakes_total", **m) == 2
    assert value(families, "rivetkit_actor_sleeps_total", **m) == 1
    assert value(families, "rivetkit_actor_destroys_total", **m) == 0
    assert value(families, "rivetkit_actor_active", **m) == 1
    # Connections: the WebSocket one is closed now; HTTP actions open ephemeral ones.
    assert value(families, "rivetkit_actor_connections", **m) == 0
    opened = value(families, "rivetkit_actor_connections_opened_total", **m)
    closed = value(families, "rivetkit_actor_connections_closed_total", **m)
    assert opened >= 1 and opened == closed
    # Queue: 2 sent, 1 received and completed, 1 still held.
    assert value(families, "rivetkit_actor_queue_messages_sent_total", **m) == 2
    assert value(families, "rivetkit_actor_queue_messages_received_total", **m) == 1
    assert value(families, "rivetkit_actor_queue_messages_completed_total", **m) == 1
    assert value(families, "rivetkit_actor_queue_size", **m) == 1
    # Saves.
    assert value(families, "rivetkit_actor_state_saves_total", **m) >= 2
    assert value(families, "rivetkit_actor_state_saved_bytes_total", **m) > 0
    # The schedule run.
    assert (
        value(families, "rivetkit_actor_schedule_runs_total", kind="once", outcome="ok", **m) == 1
    )


def metered_fired(runtime: Any, actor_id: str) -> int:
    instance = runtime.instances.get(actor_id)
    return 0 if instance is None else int(instance.state["fired"])


@pytest.mark.asyncio
async def test_actor_level_route_has_only_that_actor(served: tuple[str, Client]) -> None:
    endpoint, client = served
    handle = client.metered.get_or_create(["a"])
    await handle.inc()
    assert await client.other.get_or_create(["b"]).ping() == "pong"
    actor_id = await handle.resolve()

    response = await scrape(endpoint, f"/gateway/{actor_id}/metrics")
    assert response.status_code == 200
    assert response.headers["x-rivet-actor"] == actor_id
    families = parse(response.text)
    assert families["rivetkit_info"].samples[0].labels["version"] == rivetkit.__version__
    names = {s.labels.get("actor_name") for f in families.values() for s in f.samples}
    assert names == {None, "metered"}  # None: rivetkit_info
    assert "process_cpu_seconds" not in families
    assert value(families, "rivetkit_actor_actions_total", action="inc", outcome="ok") == 1

    # The server-level route has both actors.
    families = parse((await scrape(endpoint)).text)
    assert value(families, "rivetkit_actor_actions_total", action="ping", outcome="ok") == 1

    async with httpx.AsyncClient(timeout=30) as http:
        wrong = await http.post(endpoint + "/metrics")
    assert wrong.status_code == 405


@pytest.mark.asyncio
async def test_token_required_when_set(
    served: tuple[str, Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, _ = served
    monkeypatch.setenv("RIVETKIT_METRICS_TOKEN", "s3cret")
    assert (await scrape(endpoint)).status_code == 401
    assert (await scrape(endpoint, authorization="Bearer nope")).status_code == 401
    response = await scrape(endpoint, authorization="Bearer s3cret")
    assert response.status_code == 200
    assert "rivetkit_info" in response.text


@pytest.mark.asyncio
async def test_metrics_off(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIVETKIT_METRICS", "0")
    async with (
        serve_in_background(registry, data_dir=tmp_path) as endpoint,
        Client(str(endpoint), encoding="json", retry=FAST_RETRY) as client,
    ):
        handle = client.metered.get_or_create(["off"])
        assert await handle.inc() == 1
        response = await scrape(str(endpoint))
        assert response.status_code == 403
        assert response.text == "metrics not enabled\n"
        actor_id = await handle.resolve()
        assert endpoint.app.runtime.instances[actor_id].metrics is None


@pytest.mark.asyncio
async def test_latency_off_counts_without_histogram() -> None:
    from rivetkit.metrics.exposition import render

    async with setup_test(registry) as client:
        client.runtime.metrics.options = MetricsOptions(latency=False)  # before any actor
        handle = client.metered.get_or_create(["nolat"])
        assert await handle.inc() == 1
        assert await handle.inc() == 2
        families = parse(render(client.runtime.metrics).decode())
        assert "rivetkit_actor_action_duration_seconds" not in families
        assert value(families, "rivetkit_actor_actions_total", action="inc", outcome="ok") == 2


@pytest.mark.asyncio
async def test_runtimes_in_one_process_do_not_share() -> None:
    from rivetkit.metrics.exposition import render

    async with setup_test(registry) as one, setup_test(registry) as two:
        assert one.runtime.metrics.registry is not two.runtime.metrics.registry
        await one.metered.get_or_create(["x"]).inc()
        await one.metered.get_or_create(["x"]).inc()
        await two.metered.get_or_create(["x"]).inc()
        first = parse(render(one.runtime.metrics).decode())
        second = parse(render(two.runtime.metrics).decode())
        assert value(first, "rivetkit_actor_actions_total", action="inc", outcome="ok") == 2
        assert value(second, "rivetkit_actor_actions_total", action="inc", outcome="ok") == 1


@pytest.mark.asyncio
async def test_destroy_and_recurring_schedule_counted() -> None:
    from rivetkit.metrics.exposition import render

    now = [1_000_000.0]
    async with setup_test(registry, clock=lambda: now[0]) as client:
        handle = client.metered.get_or_create(["d"])
        actor_id = await handle.resolve()
        await handle.inc()
        instance = client.runtime.instances[actor_id]
        await instance.schedule.every("tick", 5.0, "fire")
        now[0] += 6.0
        await client.runtime.driver.poll_alarms()
        await eventually(lambda: instance.state["fired"] >= 1, timeout=20)
        instance.request_destroy()
        await eventually(lambda: actor_id not in client.runtime.instances, timeout=20)
        families = parse(render(client.runtime.metrics).decode())
        assert value(families, "rivetkit_actor_destroys_total") == 1
        assert value(families, "rivetkit_actor_sleeps_total") == 0
        assert value(families, "rivetkit_actor_active", actor_name="metered") == 0
        assert (
            value(families, "rivetkit_actor_schedule_runs_total", kind="recurring", outcome="ok")
            >= 1
        )


def test_error_codes() -> None:
    assert error_code(UserError("x", code="nope")) == "user.nope"
    assert error_code(asyncio.CancelledError()) == "cancelled"
    assert error_code(ValueError("boom")) == "core.internal_error"


def test_options_validate_buckets() -> None:
    with pytest.raises(ValueError):
        MetricsOptions(buckets=(1.0, 0.5))
    with pytest.raises(ValueError):
        MetricsOptions(buckets=())
    assert MetricsOptions(buckets=(1, 2)).buckets == (1.0, 2.0)


# MARK: the action recorder twins


@pytest.fixture(params=TWIN_IDS)
def stats_twin(request: pytest.FixtureRequest) -> Any:
    return twin(request.param, "_action_stats", _action_stats_py)


BOUNDS = (0.05, 60.0, 3600.0)


def test_recorder_buckets(stats_twin: Any) -> None:
    stats = stats_twin.ActionStats(BOUNDS)
    assert stats.timed
    assert stats_twin.clock_kind() in ("perf_counter", "tsc", "monotonic")
    stats.ok("a", stats.start())  # ~0 s: (0, 0.05]
    started = stats.start()
    time.sleep(0.1)  # at least 0.1 s: (0.05, 60]
    stats.ok("a", started)
    stats.ok("b", stats.start())
    counts, total = stats.row("a")
    assert counts == [1, 1, 0, 0]
    assert 0.1 <= total < 60.0
    assert sorted(stats.names()) == ["a", "b"]
    assert stats.row("c") is None


def test_pure_recorder_overflow_bucket() -> None:
    stats = _action_stats_py.ActionStats(BOUNDS)
    stats.ok("a", stats.start() - 7200.0)  # the pure twin's reading is perf_counter seconds
    assert stats.row("a")[0] == [0, 0, 0, 1]


def test_recorder_untimed(stats_twin: Any) -> None:
    stats = stats_twin.ActionStats(BOUNDS, False)
    assert not stats.timed
    assert stats.start() == 0.0
    for _ in range(3):
        stats.ok("a", stats.start())
    assert stats.row("a") == ([0, 0, 0, 3], 0.0)


def test_recorder_needs_bounds(stats_twin: Any) -> None:
    with pytest.raises(ValueError):
        stats_twin.ActionStats(())


def test_actor_metrics_failed_unknown_is_bounded() -> None:
    handle = ActorMetrics("x", ["known"])
    for name in ("a", "b", "c"):
        handle.action_failed(name, UserError("no", code="c"), handle.start())
    handle.action_failed("known", ValueError(), handle.start())
    assert handle.errors == {(UNKNOWN_ACTION, "user.c"): 3, ("known", "core.internal_error"): 1}
    assert handle.calls("known") == 1
    assert handle.calls(UNKNOWN_ACTION) == 0
    assert handle.failures("known") == 1


# MARK: engine mode's listener


class _StubEnvoy:
    """What StatusApp reads of an engine driver."""

    def status(self) -> dict[str, Any]:
        return {"connected": True, "actors": {}, "pending_events": 0, "stats": {}, "tunnel": {}}


@pytest.mark.asyncio
async def test_engine_mode_listener_adds_runtime_metrics() -> None:
    from rivetkit.drivers.engine.serve import StatusApp

    async with setup_test(registry) as client:
        assert await client.metered.get_or_create(["e"]).inc() == 1
        app = StatusApp(_StubEnvoy(), client.runtime)  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            response = await http.get("/metrics")
        assert response.status_code == 200
        families = parse(response.text)
        assert value(families, "rivetkit_envoy_connected") == 1
        assert families["rivetkit_info"].samples[0].labels["version"] == rivetkit.__version__
        assert value(families, "rivetkit_actor_actions_total", action="inc", outcome="ok") == 1
