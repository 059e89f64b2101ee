"""Writes that do not fit the declared state, vars and connection state."""

from __future__ import annotations

from good_actor import Ctx, counter

from rivetkit import ActorContext


@counter.action
def wrong_state(c: Ctx) -> None:
    c.state["count"] = "x"  # E: typeddict-item
    c.state["missing"] = 1  # E: typeddict-unknown-key
    c.vars["hits"] = "y"  # E: typeddict-item
    if c.conn is not None:
        c.conn.state["user"] = 3  # E: typeddict-item


@counter.action
def wrong_return(c: ActorContext[dict[str, int]]) -> str:
    return c.state["count"]  # E: return-value
