"""A typed actor: state, vars and connection state through ActorContext's parameters."""

from __future__ import annotations

from typing import Any, TypedDict

from rivetkit import ActorContext, Connection, actor, setup


class Counter(TypedDict):
    count: int


class Vars(TypedDict):
    hits: int


class Session(TypedDict):
    user: str


Ctx = ActorContext[Counter, Vars, Session]

counter = actor("counter")


@counter.create_state
def create_state(c: ActorContext[Counter], input: Any) -> Counter:
    return {"count": int(input or 0)}


@counter.create_vars
def create_vars(c: ActorContext[Counter]) -> Vars:
    return {"hits": 0}


@counter.create_conn_state
def create_conn_state(c: ActorContext[Counter], params: Any) -> Session:
    return {"user": str(params)}


@counter.on_connect
def on_connect(c: Ctx, conn: Connection[Session]) -> None:
    c.log.info("hello %s", conn.state["user"])


@counter.on_wake
async def on_wake(c: Ctx) -> None:
    c.vars["hits"] = 0


@counter.on_before_connect
def on_before_connect(c: Ctx, params: Any) -> None:
    if c.state["count"] < 0:
        raise ValueError("closed")


@counter.on_disconnect
async def on_disconnect(c: Ctx, conn: Connection[Session]) -> None:
    c.broadcast("left", conn.state["user"])


@counter.on_state_change
def on_state_change(c: Ctx, new_state: Counter) -> None:
    c.vars["hits"] += new_state["count"]


@counter.run
async def run(c: Ctx) -> None:
    while not c.aborted:
        await c.keep_awake(c.save_state())
        break


@counter.action
def increment(c: ActorContext[Counter], amount: int) -> int:
    c.state["count"] += amount
    return c.state["count"]


@counter.action(name="getCount")
async def get_count(c: Ctx) -> int:
    c.vars["hits"] += 1
    return c.state["count"]


@counter.action
def whoami(c: Ctx) -> str | None:
    return None if c.conn is None else c.conn.state["user"]


@counter.action
def untyped(c: ActorContext, anything: Any) -> Any:
    c.state = anything  # ActorContext alone: everything is Any
    return c.vars


registry = setup(use=[counter])
