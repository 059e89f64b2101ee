"""The HTTP action fast road (rivetkit.server.action_fast) answers as the ordinary road does.

One real server on 127.0.0.1 (our uvicorn protocol), in a thread with its own loop. Each
generated request (hypothesis: bodies, encodings, connection params, action names, sizes) is
sent three times over raw sockets, each time to a fresh actor of its own and with the app's
road switched: the ordinary one (``_serve_action`` None), the pure twin, the compiled twin.
The three answers must be the same bytes (the date line dropped; the actor's id and key put
in neutral form), and so must the actors' state and metric lines afterwards. Requests the
fast road must take are checked to be taken.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import both_twins
from rivetkit import ActorOptions, UserError, actor, setup
from rivetkit.server import serve_in_background

probe = actor(
    "probe",
    state={"log": []},
    options=ActorOptions(max_incoming_message_size=300, max_outgoing_message_size=300),
)


@probe.action
def echo(c: Any, value: Any = None) -> Any:
    return value


@probe.action
async def add(c: Any, value: Any = None) -> int:
    c.state["log"].append(value)
    return len(c.state["log"])


@probe.action
def fail(c: Any, code: Any = "oops") -> None:
    raise UserError("it failed", code=str(code)[:20])


@probe.action
def crash(c: Any) -> None:
    raise ValueError("internal")


@probe.action
def params(c: Any) -> Any:
    return c.conn.params


@probe.action(name="getLog")
def get_log(c: Any) -> Any:
    return c.state["log"]


@probe.action
def unencodable(c: Any) -> Any:
    return {1, 2}


@probe.action
async def pause(c: Any, value: Any = None) -> Any:
    """Suspends once (the rest of it runs within the action's timeout)."""
    await asyncio.sleep(0)
    c.state["log"].append(value)
    return value


@probe.action(name="ownTimeout")
async def own_timeout(c: Any) -> None:
    raise TimeoutError("raised by the action itself")


@probe.action(name="badState")
def bad_state(c: Any) -> None:
    c.state["log"].append({1, 2})  # cannot be saved: refused, the state restored


@probe.action(name="badStateLater")
async def bad_state_later(c: Any) -> None:
    await asyncio.sleep(0)
    c.state["log"].append({3})


slow = actor("slow", state={"n": 0}, options=ActorOptions(action_timeout=0.05))


@slow.action
async def nap(c: Any) -> None:
    c.state["n"] += 1
    await asyncio.sleep(2)


@slow.action
def peek(c: Any) -> int:
    return int(c.state["n"])


registry = setup(use=[probe, slow])


class Background:
    """The server, in a thread running its own event loop."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.stop: asyncio.Event | None = None
        self.endpoint: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self.stop = asyncio.Event()
        async with serve_in_background(registry) as endpoint:
            self.endpoint = endpoint
            self.ready.set()
            await self.stop.wait()

    def close(self) -> None:
        assert self.stop is not None
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(20)


@pytest.fixture(scope="module")
def server() -> Iterator[Background]:
    # uvicorn writes its access log when its logger has a handler, pytest's capture ones
    # included (then neither respond() nor the direct road answers): as `rivetkit serve`, none.
    import logging

    access = logging.getLogger("uvicorn.access")
    access.hasHandlers = lambda: False  # type: ignore[method-assign]
    background = Background()
    background.thread.start()
    assert background.ready.wait(20)
    try:
        yield background
    finally:
        background.close()
        del access.hasHandlers


def exchange(address: tuple[str, int], request: bytes) -> bytes:
    """Send ``request`` on a new connection; the whole response (head and body)."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk
            body += chunk
    return head + b"\r\n\r\n" + body


def query(key: str) -> str:
    return f"rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key={key}"


def action_request(
    key: str,
    name: str,
    body: bytes,
    headers: list[tuple[str, str]],
    method: str = "POST",
    actor_name: str = "probe",
) -> bytes:
    path = f"/gateway/{actor_name}/action/{name}?{query(key)}"
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def neutral(response: bytes, actor_id: str, key: str) -> bytes:
    lines = [line for line in response.split(b"\r\n") if not line.lower().startswith(b"date:")]
    return b"\r\n".join(lines).replace(actor_id.encode(), b"ACTOR").replace(key.encode(), b"KEY")


_keys = itertools.count()


def roads(background: Background) -> dict[str, Any]:
    pure, compiled = both_twins("_action_fast", "rivetkit.server._action_fast_py")
    return {"ordinary": None, "pure": pure.serve_action, "compiled": compiled.serve_action}


def counted(fn: Any, taken: list[bool]) -> Any:
    async def serve(*args: Any) -> Any:
        answer = await fn(*args)
        taken.append(answer is not None)
        return answer

    return serve


def run_on(
    background: Background, road: Any, request_of: Any, actor_name: str = "probe"
) -> tuple[bytes, str, str, Any]:
    """Warm a fresh actor (its route cached), switch the road, send the request; the answer,
    the actor's id and key, and the change of the actor name's metric lines meanwhile."""
    key = f"k{next(_keys):08d}"  # one length: the answers hold it
    address = _address(background)
    warm_action = "getLog" if actor_name == "probe" else "peek"
    warm = exchange(
        address,
        action_request(key, warm_action, b"{}", [("x-rivet-encoding", "json")], "POST", actor_name),
    )
    assert warm.startswith(b"HTTP/1.1 200 "), warm
    actor_id = next(
        line.split(b": ", 1)[1].decode()
        for line in warm.split(b"\r\n")
        if line.lower().startswith(b"x-rivet-actor:")
    )
    app = background.endpoint.app
    before = metric_lines(background, actor_name)
    app._serve_action = road
    try:
        answer = exchange(address, request_of(key))
        # The answer may be read before the server's step that wrote it is over (respond()
        # writes within the road): a round trip to its loop lets that step finish.
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), background.loop).result(10)
    finally:
        app._serve_action = None
    after = metric_lines(background, actor_name)
    delta = {name: after[name] - before.get(name, 0.0) for name in after}
    return answer, actor_id, key, {name: v for name, v in delta.items() if v}


def _address(background: Background) -> tuple[str, int]:
    host, port = str(background.endpoint).rsplit(":", 1)
    return host.removeprefix("http://"), int(port)


#: The metric families a request moves: its action's outcome and its temporary connection.
_PER_REQUEST = ("rivetkit_actor_action", "rivetkit_actor_connections")


def metric_lines(background: Background, actor_name: str) -> dict[str, float]:
    """The per-request metric lines of the ``actor_name`` actors (durations left out)."""
    from rivetkit.metrics.exposition import render

    metrics = background.endpoint.app.runtime.metrics
    if metrics is None:
        return {}
    lines: dict[str, float] = {}
    for line in render(metrics, actor_name).decode().splitlines():
        if not line.startswith(_PER_REQUEST) or "_seconds" in line:
            continue  # (saves and sleeps of earlier actors may land meanwhile)
        name, _, value = line.rpartition(" ")
        lines[name] = float(value)
    return lines


def state_of(background: Background, actor_id: str) -> Any:
    """The actor's log (read on the server's loop)."""

    async def read() -> Any:
        instance = background.endpoint.app.runtime.instances[actor_id]
        return json.dumps(instance.state["log"], default=repr)

    return asyncio.run_coroutine_threadsafe(read(), background.loop).result(10)


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


_ODD_JSON = [
    b' {"args":[1]}',
    b'{"args":[1]} ',
    b'{"args":["$BigInt","12"]}',
    b'{"args":[["$Date", 5]]}',
    b'{"args":null}',
    b'{"args":5}',
    b'{"args":"x"}',
    b"{}",
    b"[1]",
    b'{"args":[NaN]}',
    b'{"args":[1.5, true, null, {"a": [1]}]}',
    b'{"args":[1],"args":[2]}',
    b'{"args":["\xff"]}',
    b'{"args":[1]}{"args":[2]}',
]


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes, list[tuple[str, str]], bool]:
    """(action name, body, headers, whether the fast road must take it)."""
    name = draw(
        st.sampled_from(
            ["echo", "add", "fail", "crash", "params", "getLog", "nope", "unencodable", "pause"]
        )
        | st.sampled_from(["ownTimeout", "badState", "badStateLater"])
        | st.sampled_from(["a%20b", "echo%zz", "%C3%A9"])
    )
    encoding = draw(st.sampled_from(["json", "cbor", "bare", None, "xml", "", "JSON"]))
    args = draw(st.lists(values, max_size=2))
    kind = draw(st.sampled_from(["good", "good", "good", "junk", "big", "odd"]))
    if kind == "odd":  # json the common case's shortcut leaves to the full decoder
        body = draw(st.sampled_from(_ODD_JSON))
    elif kind == "junk":
        body = draw(st.binary(max_size=40))
    elif kind == "big":
        body = b'{"args":["' + b"x" * 400 + b'"]}'
    elif encoding == "cbor":
        body = cbor2.dumps({"args": args})
    elif encoding == "bare":
        body = draw(st.binary(max_size=20))
    else:
        body = json.dumps({"args": args}).encode()
    headers: list[tuple[str, str]] = []
    if encoding is not None:
        headers.append(("x-rivet-encoding", encoding))
        if draw(st.booleans()):  # the first one counts
            headers.append(("x-rivet-encoding", draw(st.sampled_from(["cbor", "xml"]))))
    if draw(st.booleans()):
        params = draw(values)
        headers.append(("x-rivet-conn-params", json.dumps(params)))
    elif draw(st.booleans()):
        headers.append(("x-rivet-conn-params", draw(st.sampled_from(["{", "[1", '"x"', "%"]))))
    taken = encoding in ("json", "cbor", "bare", None, "") and "%" not in name
    return name, body, headers, taken


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests())
def test_fast_road_answers_as_the_ordinary_one(server: Background, case: Any) -> None:
    name, body, headers, must_take = case
    answers = {}
    after = {}
    for label, road in roads(server).items():
        taken: list[bool] = []
        fn = None if road is None else counted(road, taken)
        answer, actor_id, key, metrics = run_on(
            server, fn, lambda key: action_request(key, name, body, headers)
        )
        answers[label] = neutral(answer, actor_id, key)
        after[label] = (state_of(server, actor_id), metrics)
        if road is not None:
            assert taken == [must_take], (label, case)
    assert answers["pure"] == answers["ordinary"], case
    assert answers["compiled"] == answers["ordinary"], case
    assert after["pure"] == after["ordinary"]
    assert after["compiled"] == after["ordinary"]


def test_fast_road_leaves_other_requests(server: Background) -> None:
    """A GET, an Origin header, a non-action route: the ordinary road, same bytes."""
    for label, road in roads(server).items():
        if road is None:
            continue
        taken: list[bool] = []
        fn = counted(road, taken)
        for request_of in (
            lambda key: action_request(key, "echo", b"{}", [], method="GET"),
            lambda key: (
                f"GET /gateway/probe/metadata?{query(key)} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
            ).encode(),
            lambda key: action_request(key, "echo", b"{}", [("origin", "http://127.0.0.1:1")]),
        ):
            answer, _, _, _ = run_on(server, fn, request_of)
            assert answer.startswith(b"HTTP/1.1 "), answer
        assert True not in taken, label


def test_fast_road_is_taken(server: Background) -> None:
    """A plain action goes the fast road."""
    for label, road in roads(server).items():
        if road is None:
            continue
        taken: list[bool] = []
        answer, _, _, _ = run_on(
            server,
            counted(road, taken),
            lambda key: action_request(key, "add", b'{"args":[5]}', [("x-rivet-encoding", "json")]),
        )
        assert taken == [True], label
        assert answer.endswith(b'\r\n\r\n{"output":1}'), answer


def test_fast_road_times_out_as_the_ordinary_one(server: Background) -> None:
    """An action past its ``action_timeout``: the same answer, metric lines and state."""
    answers = {}
    after = {}
    for label, road in roads(server).items():
        taken: list[bool] = []
        answer, actor_id, key, metrics = run_on(
            server,
            None if road is None else counted(road, taken),
            lambda key: action_request(
                key, "nap", b'{"args":[]}', [("x-rivet-encoding", "json")], "POST", "slow"
            ),
            "slow",
        )
        assert b"action_timed_out" in answer, answer
        answers[label] = neutral(answer, actor_id, key)
        after[label] = metrics
        if road is not None:
            assert taken == [True], label
    assert answers["pure"] == answers["ordinary"]
    assert answers["compiled"] == answers["ordinary"]
    assert after["pure"] == after["ordinary"]
    assert after["compiled"] == after["ordinary"]


def test_compiled_twin_is_the_pure_code() -> None:
    """The .pyx is the pure twin's code compiled (annotations dropped): the two cannot drift."""
    root = Path(__file__).resolve().parent.parent / "rivetkit"
    pure = (root / "server" / "_action_fast_py.py").read_text()
    compiled = (root / "_speedups" / "_action_fast.pyx").read_text()

    def code(source: str) -> str:
        body = source.split('__all__ = ["answer_action", "direct_target", "serve_action"]', 1)[1]
        return re.sub(r"def (\w+)\([^)]*\)[^:\n]*:", r"def \1():", body)

    assert code(compiled) == code(pure)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.sampled_from(_ODD_JSON),
        st.binary(max_size=30),
        st.builds(lambda v: json.dumps({"args": v}).encode(), values),
        st.builds(lambda v: json.dumps(v).encode(), values),
    )
)
def test_json_args_shortcut_agrees(body: bytes) -> None:
    """Where the common case's shortcut answers, it answers what the full decoder does."""
    from rivetkit.protocol.http_bodies import http_action_request_from

    pure, compiled = both_twins("_action_fast", "rivetkit.server._action_fast_py")
    try:
        full: Any = http_action_request_from(body, "json")
    except Exception as exc:
        full = exc
    for twin in (pure, compiled):
        short = twin._json_args(body)
        if short is not None:
            assert short == full and type(short) is list, body
            again = twin._json_args(body)  # from the table of bodies seen, when small
            assert again == full and type(again) is list and again is not short, body


def test_json_args_table_gives_new_lists_and_stays_bounded() -> None:
    """The table of bodies seen hands out a new list each time (a caller may change its
    list), and holds at most its maximum of small bodies."""
    for twin in both_twins("_action_fast", "rivetkit.server._action_fast_py"):
        body = b'{"args":[1,"two",null,true,2.5]}'
        first = twin._json_args(body)
        first.append("changed")
        assert twin._json_args(body) == [1, "two", None, True, 2.5]
        for n in range(twin._ARGS_SEEN_MAX + 10):
            assert twin._json_args(b'{"args":[%d]}' % n) == [n]
            assert len(twin._ARGS_SEEN) <= twin._ARGS_SEEN_MAX
        big = b'{"args":["%s"]}' % (b"x" * twin._ARGS_SEEN_BODY)
        assert twin._json_args(big) == ["x" * twin._ARGS_SEEN_BODY]
        assert big not in twin._ARGS_SEEN


# -- the direct road (rivetkit/server/http_direct.py): from the parser callbacks, no ASGI ---


def direct_roads() -> dict[str, Any]:
    """The ordinary road, and the direct road over each twin (the app's ``_serve_action``
    one of the twins' own: the direct road takes over from it)."""
    pure, compiled = both_twins("_action_fast", "rivetkit.server._action_fast_py")
    return {"ordinary": None, "pure": pure.serve_action, "compiled": compiled.serve_action}


def taken_count() -> int:
    from rivetkit.server.http_direct import DirectCycle

    return DirectCycle.taken


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests())
def test_direct_road_answers_as_the_ordinary_one(server: Background, case: Any) -> None:
    name, body, headers, must_take = case
    answers = {}
    after = {}
    for label, road in direct_roads().items():
        before = taken_count()
        answer, actor_id, key, metrics = run_on(
            server, road, lambda key: action_request(key, name, body, headers)
        )
        answers[label] = neutral(answer, actor_id, key)
        after[label] = (state_of(server, actor_id), metrics)
        if road is not None:
            assert taken_count() - before == int(must_take), (label, case)
    assert answers["pure"] == answers["ordinary"], case
    assert answers["compiled"] == answers["ordinary"], case
    assert after["pure"] == after["ordinary"]
    assert after["compiled"] == after["ordinary"]


def converse(
    address: tuple[str, int], chunks: list[bytes], pause: float = 0.02, close: bool = False
) -> bytes:
    """Send ``chunks`` on one connection (``pause`` seconds apart); everything the server
    sends until it closes (or, with ``close``, hang up right after the last chunk: b"")."""
    import time

    with socket.create_connection(address, timeout=10) as sock:
        for n, chunk in enumerate(chunks):
            if n:
                time.sleep(pause)
            sock.sendall(chunk)
        if close:
            return b""
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def on_each_road(
    background: Background, chunks_of: Any, close: bool = False
) -> dict[str, tuple[bytes, Any, int]]:
    """For each road: a fresh warm actor, the conversation ``chunks_of(key)``; the answers
    (neutral), the actor's log afterwards and the requests the direct road took."""
    import time

    results = {}
    for label, road in direct_roads().items():
        key = f"k{next(_keys):08d}"
        address = _address(background)
        warm = exchange(address, action_request(key, "getLog", b"{}", []))
        actor_id = next(
            line.split(b": ", 1)[1].decode()
            for line in warm.split(b"\r\n")
            if line.lower().startswith(b"x-rivet-actor:")
        )
        app = background.endpoint.app
        before = taken_count()
        app._serve_action = road
        try:
            answer = converse(address, chunks_of(key), close=close)
            if close:
                time.sleep(0.2)  # the action's rest, after the client left
        finally:
            app._serve_action = None
        taken = taken_count() - before
        results[label] = (neutral(answer, actor_id, key), state_of(background, actor_id), taken)
    return results


def _same(results: dict[str, tuple[bytes, Any, int]]) -> None:
    ordinary = results["ordinary"][:2]
    assert results["pure"][:2] == ordinary
    assert results["compiled"][:2] == ordinary


def test_direct_road_keeps_pipelined_order(server: Background) -> None:
    """Pipelined requests, direct and ordinary ones mixed (one that suspends among them),
    the last with ``connection: close``: answered in order, as the ordinary road does."""

    def chunks(key: str) -> list[bytes]:
        json_ = [("x-rivet-encoding", "json")]
        return [
            action_request(key, "add", b'{"args":[1]}', json_)
            + action_request(key, "pause", b'{"args":[2]}', json_)
            + f"GET /gateway/probe/metadata?{query(key)} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".encode()
            + action_request(key, "add", b'{"args":[3]}', json_)
            + action_request(key, "getLog", b"{}", [*json_, ("connection", "close")])
        ]

    results = on_each_road(server, chunks)
    _same(results)
    answer = results["ordinary"][0]
    assert answer.count(b"HTTP/1.1 200 ") == 5, answer
    assert answer.endswith(b"[1,2,3]}"), answer
    assert results["pure"][2] >= 1 and results["compiled"][2] >= 1


def test_direct_road_split_body_and_close(server: Background) -> None:
    """A head, then its body in two packets; then a request with ``connection: close``."""

    def chunks(key: str) -> list[bytes]:
        whole = action_request(key, "add", b'{"args":["split"]}', [])
        head, _, body = whole.partition(b"\r\n\r\n")
        last = action_request(key, "getLog", b"{}", [("connection", "close")])
        return [head + b"\r\n\r\n", body[:5], body[5:], last]

    results = on_each_road(server, chunks)
    _same(results)
    assert results["ordinary"][0].endswith(b'{"output":["split"]}'), results["ordinary"][0]
    assert b"connection: close" in results["ordinary"][0]
    assert results["pure"][2] == 2 and results["compiled"][2] == 2


def test_direct_road_leaves_big_bodies_and_others(server: Background) -> None:
    """A body over the direct road's size, an Origin, an ``Expect: 100-continue``: the
    ordinary road answers them (the same bytes: the body limit's refusal, ...); a ``POST``
    without a body: the direct road (the same refusal of its args)."""
    from rivetkit.server.http_direct import MAX_DIRECT_BODY

    big = b'{"args":["' + b"x" * MAX_DIRECT_BODY + b'"]}'
    close = [("connection", "close")]
    for extra, taken in (
        (lambda key: action_request(key, "add", big, close), 0),
        (lambda key: action_request(key, "add", b"{}", [("origin", "http://a.b"), *close]), 0),
        (lambda key: action_request(key, "add", b"{}", [("expect", "100-continue"), *close]), 0),
        (
            lambda key: (
                f"POST /gateway/probe/action/add?{query(key)} HTTP/1.1\r\n"
                "host: 127.0.0.1\r\nconnection: close\r\n\r\n"
            ).encode(),
            1,
        ),
    ):
        results = on_each_road(server, lambda key, extra=extra: [extra(key)])
        _same(results)
        assert results["pure"][2] == taken and results["compiled"][2] == taken


def test_direct_road_client_leaves_mid_answer(server: Background) -> None:
    """The client hangs up while its action (suspended) runs: the action's effect stays,
    as on the ordinary road, and the server goes on serving."""

    def chunks(key: str) -> list[bytes]:
        return [action_request(key, "pause", b'{"args":["gone"]}', [])]

    results = on_each_road(server, chunks, close=True)
    _same(results)
    assert results["ordinary"][1] == '["gone"]'
    assert results["pure"][2] == 1 and results["compiled"][2] == 1


def test_runs_at_once(server: Background) -> None:
    """The direct road answers within the parser's callback only what runs no coroutine of
    the user's: a sync action (or an unknown name, refused at once), not an async one."""
    key = f"k{next(_keys):08d}"
    warm = exchange(_address(server), action_request(key, "getLog", b"{}", []))
    actor_id = next(
        line.split(b": ", 1)[1].decode()
        for line in warm.split(b"\r\n")
        if line.lower().startswith(b"x-rivet-actor:")
    )
    instance = server.endpoint.app.runtime.instances[actor_id]
    assert instance.runs_at_once("echo")
    assert instance.runs_at_once("nope")
    assert not instance.runs_at_once("add")
    assert not instance.runs_at_once("pause")


def _stream_request(key: str, kind: str, n: int) -> bytes:
    json_ = [("x-rivet-encoding", "json")]
    if kind == "sync":
        return action_request(key, "echo", b'{"args":[%d]}' % n, json_)
    if kind == "async":
        return action_request(key, "add", b'{"args":[%d]}' % n, json_)
    if kind == "suspends":
        return action_request(key, "pause", b'{"args":[%d]}' % n, json_)
    if kind == "error":
        return action_request(key, "fail", b'{"args":["c%d"]}' % n, [])
    if kind == "origin":
        return action_request(key, "add", b'{"args":[%d]}' % n, [("origin", "http://x.y")])
    return f"GET /gateway/probe/metadata?{query(key)} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".encode()


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.sampled_from(["sync", "async", "suspends", "error", "origin", "ordinary"]),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.integers(1, 400), max_size=4),
)
def test_direct_road_on_random_streams(server: Background, kinds: list[str], cuts: Any) -> None:
    """Requests of every kind on one connection, the byte stream cut at random points (a
    head or a body split across packets, several requests in one): the same answers, in
    the same order, and the same state as on the ordinary road."""

    def chunks(key: str) -> list[bytes]:
        stream = b"".join(_stream_request(key, kind, n) for n, kind in enumerate(kinds))
        stream += action_request(key, "getLog", b"{}", [("connection", "close")])
        points = sorted({min(c, len(stream) - 1) for c in cuts})
        return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)]) if b > a]

    results = on_each_road(server, chunks)
    _same(results)
    assert results["ordinary"][0].count(b"HTTP/1.1 ") == len(kinds) + 1


def test_direct_road_unexpected_failure_is_a_500(
    server: Background, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure the road does not answer itself (a bug: here the road's answer_action
    raising) is uvicorn's 500 with ``connection: close``, on the direct road as through
    ASGI (the fast road behind ``RivetApp.__call__``), over both twins."""
    pure, compiled = both_twins("_action_fast", "rivetkit.server._action_fast_py")

    async def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    for twin in (pure, compiled):
        monkeypatch.setattr(twin, "answer_action", broken)
        answers = []
        for road in (counted(twin.serve_action, []), twin.serve_action):  # ASGI, direct
            before = taken_count()
            answer, _, _, _ = run_on(
                server, road, lambda key: action_request(key, "echo", b"{}", [])
            )
            answers.append(
                b"\r\n".join(line for line in answer.split(b"\r\n") if b"date:" not in line)
            )
            assert taken_count() - before == (road is twin.serve_action)
        assert answers[0] == answers[1]
        assert answers[0].startswith(b"HTTP/1.1 500 "), answers[0]
        assert answers[0].endswith(b"connection: close\r\n\r\nInternal Server Error")


def test_direct_road_actor_stops_before_the_body(server: Background) -> None:
    """The head finds the actor running, it is asked to sleep before the body comes: the
    action is answered and kept on every road (the ordinary road holds the actor until
    then; the direct road, finding it stopped when the body is whole, hands the request to
    the ordinary road, which wakes it: a new generation answers)."""
    import time

    results = {}
    for label, road in direct_roads().items():
        key = f"k{next(_keys):08d}"
        address = _address(server)
        warm = exchange(address, action_request(key, "getLog", b"{}", []))
        actor_id = next(
            line.split(b": ", 1)[1].decode()
            for line in warm.split(b"\r\n")
            if line.lower().startswith(b"x-rivet-actor:")
        )
        app = server.endpoint.app
        before = taken_count()
        app._serve_action = road
        try:
            request = action_request(key, "add", b'{"args":["late"]}', [])
            head, _, body = request.partition(b"\r\n\r\n")
            with socket.create_connection(address, timeout=10) as sock:
                sock.sendall(head + b"\r\n\r\n")
                time.sleep(0.1)
                instance = app.runtime.instances[actor_id]
                server.loop.call_soon_threadsafe(instance.request_sleep)
                time.sleep(0.2)
                sock.sendall(body + action_request(key, "getLog", b"{}", [("connection", "close")]))
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
        finally:
            app._serve_action = None
        results[label] = (neutral(answer, actor_id, key), taken_count() - before)
    for label, (answer, taken) in results.items():
        assert answer.count(b"HTTP/1.1 200 ") == 2, (label, answer)
        assert b'\r\n\r\n{"output":1}HTTP/1.1' in answer, (label, answer)
        assert answer.endswith(b'{"output":["late"]}'), (label, answer)  # kept
        if label != "ordinary":
            assert taken >= 1, label  # the head was the direct road's


# -- the direct road of a request that finds, creates or wakes its actor -------------------


def anonymous(response: bytes, key: str) -> bytes:
    """``response`` with the date dropped, its actors' ids (from their ``x-rivet-actor``
    headers) and ``key`` (a prefix of every key of the conversation) in neutral form."""
    lines = [line for line in response.split(b"\r\n") if not line.lower().startswith(b"date:")]
    text = b"\r\n".join(lines)
    for actor_id in set(re.findall(rb"x-rivet-actor: ([^\r]+)", text)):
        text = text.replace(actor_id, b"ACTOR")
    return text.replace(key.encode(), b"KEY")


def fresh_on_each_road(
    background: Background, chunks_of: Any, actor_name: str = "probe"
) -> dict[str, tuple[bytes, Any, int]]:
    """For each road: the conversation ``chunks_of(key)`` for a key no actor has yet; the
    answers (neutral), the metric lines it moved and the requests the direct road took."""
    results = {}
    for label, road in direct_roads().items():
        key = f"n{next(_keys):08d}"
        app = background.endpoint.app
        before = taken_count()
        metrics = metric_lines(background, actor_name)
        app._serve_action = road
        try:
            answer = converse(_address(background), chunks_of(key))
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), background.loop).result(10)
        finally:
            app._serve_action = None
        after = metric_lines(background, actor_name)
        delta = {name: after[name] - metrics.get(name, 0.0) for name in after}
        moved = {name: value for name, value in delta.items() if value}
        results[label] = (anonymous(answer, key), moved, taken_count() - before)
    return results


def _same_fresh(results: dict[str, tuple[bytes, Any, int]]) -> None:
    ordinary = results["ordinary"][:2]
    assert results["pure"][:2] == ordinary, results
    assert results["compiled"][:2] == ordinary, results


def _closing(request: bytes) -> bytes:
    head, _, body = request.partition(b"\r\n\r\n")
    return head + b"\r\nconnection: close\r\n\r\n" + body


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests())
def test_direct_road_creates_as_the_ordinary_one(server: Background, case: Any) -> None:
    """An action on a key no actor has (getOrCreate): the direct road finds nothing cached,
    creates and starts the actor as the ordinary road does, and answers the same bytes
    with the same metric lines; a second request, on the same connection, reads the state
    the first left."""
    name, body, headers, must_take = case

    def chunks(key: str) -> list[bytes]:
        return [
            action_request(key, name, body, headers)
            + _closing(action_request(key, "getLog", b"{}", []))
        ]

    results = fresh_on_each_road(server, chunks)
    _same_fresh(results)
    assert results["ordinary"][0].count(b"HTTP/1.1 ") == 2
    for label in ("pure", "compiled"):
        # (the second, pipelined behind one in flight, takes the ordinary road)
        assert results[label][2] == int(must_take), (label, case)


_GATEWAY_CASES = [
    # (path and query after the key's placeholder, the body)
    ("/gateway/probe/action/echo?rvt-namespace=default&rvt-method=get&rvt-key={key}", b"{}"),
    ("/gateway/nobody/action/echo?{query}", b"{}"),
    ("/gateway/probe/action/echo?rvt-method=getOrCreate&rvt-key={key}&rvt-bogus=1", b"{}"),
    ("/gateway/probe/action/echo?rvt-key={key}", b"{}"),
    ("/gateway/probe/action/echo?rvt-method=nope&rvt-key={key}", b"{}"),
    ("/gateway/probe/action/echo?{query}&rvt-input=%%%", b"{}"),
    ("/gateway/probe/action/echo?{query}&rvt-input=oA", b'{"args":[1]}'),
    ("/gateway/pr%6Fbe/action/echo?{query}", b'{"args":[2]}'),
    ("/gateway/%ff/action/echo?{query}", b"{}"),
    ("/gateway//action/echo?{query}", b"{}"),
    ("/gateway/no-such-actor-id/action/echo", b"{}"),
    ("/gateway/probe/action/echo", b"{}"),
    ("/gateway/probe/action/echo?{query}&other=1&x", b'{"args":[3]}'),
    ("/gateway/probe/action/echo?{query}&rvt-key=again", b"{}"),
    ("/gateway/probe/action/nope?{query}", b"{}"),
    ("/gateway/probe/action/echo?{query}", b'{"args":[' + b"1," * 200 + b"1]}"),
]


def test_direct_road_resolves_as_the_ordinary_one(server: Background) -> None:
    """The gateway's refusals and other forms (get of a missing actor, an unknown name or
    parameter, a bad input, an encoded name, a direct id no actor has, extra query
    parameters, ...): the same answers on every road, each taken by the direct road."""
    for path, body in _GATEWAY_CASES:

        def chunks(key: str, path: str = path, body: bytes = body) -> list[bytes]:
            target = path.format(key=key, query=query(key))
            head = f"POST {target} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {len(body)}"
            return [f"{head}\r\nconnection: close\r\n\r\n".encode() + body]

        results = fresh_on_each_road(server, chunks)
        _same_fresh(results)
        assert results["pure"][2] == 1 and results["compiled"][2] == 1, path


def test_direct_road_wakes_a_sleeping_actor(server: Background) -> None:
    """A cached route whose actor went to sleep (its route dropped), and an actor named by
    its id while asleep: the direct road wakes it as the ordinary road does, state kept."""
    import time

    results = {}
    for label, road in direct_roads().items():
        key = f"w{next(_keys):08d}"
        address = _address(server)
        warm = exchange(address, action_request(key, "add", b'{"args":["a"]}', []))
        actor_id = next(
            line.split(b": ", 1)[1].decode()
            for line in warm.split(b"\r\n")
            if line.lower().startswith(b"x-rivet-actor:")
        )
        app = server.endpoint.app
        instance = app.runtime.instances[actor_id]
        server.loop.call_soon_threadsafe(instance.request_sleep)
        deadline = time.monotonic() + 10
        while actor_id in app.runtime.instances:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        before = taken_count()
        app._serve_action = road
        try:
            by_id = action_request(key, "add", b'{"args":["c"]}', []).replace(
                f"/gateway/probe/action/add?{query(key)}".encode(),
                f"/gateway/{actor_id}/action/add".encode(),
            )
            answer = exchange(address, action_request(key, "add", b'{"args":["b"]}', []))
            server.loop.call_soon_threadsafe(app.runtime.instances[actor_id].request_sleep)
            while actor_id in app.runtime.instances:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            answer += exchange(address, by_id)
            answer += exchange(address, action_request(key, "getLog", b"{}", []))
        finally:
            app._serve_action = None
        results[label] = (neutral(answer, actor_id, key), taken_count() - before)
    for label, (answer, taken) in results.items():
        assert answer.count(b"HTTP/1.1 200 ") == 3, (label, answer)
        assert answer.endswith(b'{"output":["a","b","c"]}'), (label, answer)
        if label != "ordinary":
            assert taken == 3, (label, taken)
    assert results["pure"][0] == results["ordinary"][0]
    assert results["compiled"][0] == results["ordinary"][0]


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.sampled_from(["create", "sync", "async", "suspends", "error", "origin", "ordinary"]),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.integers(1, 600), max_size=4),
)
def test_direct_road_creates_on_random_streams(
    server: Background, kinds: list[str], cuts: Any
) -> None:
    """Requests that create actors (each a new key), on cached routes and for the ordinary
    road on one connection, the byte stream cut at random points: the same answers, in the
    same order, with the same metric lines as on the ordinary road."""

    def chunks(key: str) -> list[bytes]:
        parts = []
        for n, kind in enumerate(kinds):
            if kind == "create":
                parts.append(action_request(f"{key}c{n}", "add", b'{"args":[%d]}' % n, []))
            else:
                parts.append(_stream_request(key, kind, n))
        stream = b"".join(parts) + _closing(action_request(key, "getLog", b"{}", []))
        points = sorted({min(c, len(stream) - 1) for c in cuts})
        return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)]) if b > a]

    results = fresh_on_each_road(server, chunks)
    _same_fresh(results)
    assert results["ordinary"][0].count(b"HTTP/1.1 ") == len(kinds) + 1


def test_success_headers_made_per_encoding(server: Background) -> None:
    """The dispatcher's success headers: an actor's first success gets a list made for it
    alone (OnceHeaders, kept by no one); from its second on, one shared list per encoding
    asked (its content type, then the actor's headers); a new generation starts over."""
    from rivetkit.dispatch.http import OnceHeaders
    from rivetkit.dispatch.router import _CONTENT_TYPE

    key = f"h{next(_keys):08d}"
    warm = exchange(_address(server), action_request(key, "getLog", b"{}", []))
    first_id = next(
        line.split(b": ", 1)[1].decode()
        for line in warm.split(b"\r\n")
        if line.lower().startswith(b"x-rivet-actor:")
    )
    assert server.endpoint.app.dispatcher.response_headers_of(first_id) == []
    warm = exchange(_address(server), action_request(key, "getLog", b"{}", []))
    actor_id = next(
        line.split(b": ", 1)[1].decode()
        for line in warm.split(b"\r\n")
        if line.lower().startswith(b"x-rivet-actor:")
    )
    app = server.endpoint.app
    dispatcher = app.dispatcher

    async def check() -> None:
        instance = app.runtime.instances[actor_id]
        assert len(dispatcher.response_headers_of(actor_id)) == 1  # json, by the warm-up
        lists = {}
        for encoding in ("cbor", "json", "bare"):
            headers = dispatcher.success_headers(instance, encoding)
            content_type = (b"content-type", _CONTENT_TYPE[encoding])
            assert headers == [content_type, *dispatcher.headers_of(instance)]
            assert dispatcher.success_headers(instance, encoding) is headers
            lists[encoding] = headers
        assert lists["cbor"] is not lists["bare"]
        assert sorted(map(id, dispatcher.response_headers_of(actor_id))) == sorted(
            map(id, lists.values())
        )
        instance.generation += 1
        try:
            once = dispatcher.success_headers(instance, "json")
            assert type(once) is OnceHeaders
            assert (b"x-rivet-actor-generation", str(instance.generation).encode()) in once
            assert dispatcher.response_headers_of(actor_id) == []
            again = dispatcher.success_headers(instance, "json")
            assert type(again) is list and again == once
            assert again is not lists["json"]
            assert dispatcher.response_headers_of(actor_id) == [again]
            assert dispatcher.success_headers(instance, "json") is again
        finally:
            instance.generation -= 1

    asyncio.run_coroutine_threadsafe(check(), server.loop).result(10)


def test_direct_road_carries_the_ray_id(server: Background) -> None:
    """The log lines of a request the direct road takes carry its ``x-rivet-ray-id`` as the
    request id (a new id without one), over both twins."""
    import logging

    from rivetkit.logs import current_request

    seen: list[str | None] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            request = current_request()
            seen.append(None if request is None else request.request_id)

    handler = Grab()
    logger = logging.getLogger("rivetkit")
    logger.addHandler(handler)
    try:
        for label, road in direct_roads().items():
            if road is None:
                continue
            for headers in ([("x-rivet-ray-id", "ray-direct-1")], []):
                del seen[:]
                key = f"r{next(_keys):08d}"  # a new actor: resolved, created, then answered
                app = server.endpoint.app
                before = taken_count()
                app._serve_action = road
                try:
                    answer = exchange(
                        _address(server), action_request(key, "crash", b"{}", headers)
                    )
                    asyncio.run_coroutine_threadsafe(asyncio.sleep(0), server.loop).result(10)
                finally:
                    app._serve_action = None
                assert answer.startswith(b"HTTP/1.1 500 "), (label, answer)
                assert taken_count() - before == 1, label
                assert seen, label
                if headers:
                    assert set(seen) == {"ray-direct-1"}, (label, seen)
                else:
                    assert None not in seen and "ray-direct-1" not in seen, (label, seen)
    finally:
        logger.removeHandler(handler)


def test_direct_road_checks_the_host_as_the_ordinary_one(server: Background) -> None:
    """A Host the origin policy refuses (first seen, then again), one it allows (a loopback
    name, first seen), none at all: the same answers on every road; the refused ones never
    taken by the direct road, the allowed ones taken."""
    cases = [("evil.example", 0), ("evil.example", 0), ("localhost:1", 1), (None, 1)]
    for host, taken in cases:
        results = {}
        for label, road in direct_roads().items():
            key = f"h{next(_keys):08d}"
            request = action_request(key, "echo", b'{"args":[1]}', [])
            if host is None:
                request = request.replace(b"host: 127.0.0.1\r\n", b"")
            else:
                request = request.replace(b"host: 127.0.0.1", f"host: {host}".encode())
            app = server.endpoint.app
            before = taken_count()
            app._serve_action = road
            try:
                answer = exchange(_address(server), request)
                asyncio.run_coroutine_threadsafe(asyncio.sleep(0), server.loop).result(10)
            finally:
                app._serve_action = None
            actor_id = next(
                (
                    line.split(b": ", 1)[1].decode()
                    for line in answer.split(b"\r\n")
                    if line.lower().startswith(b"x-rivet-actor:")
                ),
                "none",
            )
            results[label] = (neutral(answer, actor_id, key), taken_count() - before)
        assert results["ordinary"][0].startswith(
            b"HTTP/1.1 403 " if taken == 0 else b"HTTP/1.1 200 "
        ), (host, results)
        for label in ("pure", "compiled"):
            assert results[label] == (results["ordinary"][0], taken), (host, label, results)
