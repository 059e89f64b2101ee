"""Calls between actors: the chain of serial actors a call waits behind, and cycle refusal.

An actor with ``ActorOptions(serial=True)`` runs one action at a time. When one of its actions
awaits a call that comes back to the same actor (a call to itself, or A -> B -> A), the inner
action waits for the outer one, which waits for the inner one. Instead of letting both wait
for ``action_timeout``, the inner call is refused at once with ``actor/call_cycle``.

How the runtime knows: :data:`CALL_CHAIN` (a context variable) holds the serial actions in
progress on the path of the current call. A serial actor's action lock is a
:class:`SerialLock`: entering it refuses the call when this actor is already on the chain,
else adds the actor while the action runs. The chain travels with a call:

* in process (``c.client()`` in embedded mode), by itself: the in-process transport runs the
  server in the caller's task, so the callee's action sees the caller's context variables;
* over the network (engine mode), in the :data:`CHAIN_HEADER` request header, which the
  actor-side client writes (:func:`header_value`) and the engine tunnel reads back
  (:func:`enter_from_header`) before dispatching.

Non-serial actors are never on the chain (they answer calls to themselves: actions
interleave at awaits), so the chain costs nothing to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from typing import Any, Final, NamedTuple
from urllib.parse import quote, unquote

from rivetkit.errors import RivetError

__all__ = [
    "CALL_CHAIN",
    "CHAIN_HEADER",
    "ChainLink",
    "SerialLock",
    "call_cycle_error",
    "enter_from_header",
    "header_value",
]

#: The request header carrying the chain between processes (engine mode).
CHAIN_HEADER: Final = "x-rivetkit-call-chain"
#: Most links a header carries (a longer chain keeps its last links).
_MAX_LINKS: Final = 32


class ChainLink(NamedTuple):
    """One serial actor whose action waits on the current call."""

    actor_id: str
    label: str


#: The serial actions in progress on the path of the current call, outermost first.
CALL_CHAIN: contextvars.ContextVar[tuple[ChainLink, ...]] = contextvars.ContextVar(
    "rivetkit_call_chain", default=()
)


def call_cycle_error(chain: tuple[ChainLink, ...], actor_id: str, label: str) -> RivetError:
    """``actor/call_cycle``: a call to the serial actor ``actor_id``, whose action is already
    waiting on this very call."""
    start = next(i for i, link in enumerate(chain) if link.actor_id == actor_id)
    path = [link.label for link in chain[start:]] + [label]
    return RivetError(
        "actor",
        "call_cycle",
        f"call cycle through a serial actor: {' -> '.join(path)}; the serial actor "
        f"{label} is running the action that waits for this call, so it can never run it "
        "(use a non-serial actor, or do the work without calling back)",
        metadata={"chain": path, "actor_id": actor_id},
    )


class SerialLock(asyncio.Lock):
    """The action lock of a serial actor that refuses a call cycle instead of deadlocking."""

    def __init__(self, actor_id: str, label: str) -> None:
        super().__init__()
        self._link = ChainLink(actor_id, label)
        self._tokens: list[contextvars.Token[tuple[ChainLink, ...]]] = []

    async def __aenter__(self) -> None:
        chain = CALL_CHAIN.get()
        link = self._link
        for held in chain:
            if held.actor_id == link.actor_id:
                raise call_cycle_error(chain, link.actor_id, link.label)
        await self.acquire()
        # One holder at a time: the token of the running action is the only one kept.
        self._tokens.append(CALL_CHAIN.set((*chain, link)))

    async def __aexit__(self, *exc: object) -> None:
        token = self._tokens.pop()
        # ValueError: entered in another context (not by one ``async with`` here).
        with contextlib.suppress(ValueError):
            CALL_CHAIN.reset(token)
        self.release()


def header_value() -> str | None:
    """The chain of the current context as a header value (None when empty)."""
    chain = CALL_CHAIN.get()
    if not chain:
        return None
    return ",".join(f"{quote(link.actor_id)} {quote(link.label)}" for link in chain[-_MAX_LINKS:])


def parse_header(value: str) -> tuple[ChainLink, ...]:
    """The links of a :data:`CHAIN_HEADER` value (malformed parts are skipped)."""
    links: list[ChainLink] = []
    for part in value.split(",")[-_MAX_LINKS:]:
        actor_id, _, label = part.strip().partition(" ")
        if actor_id:
            links.append(ChainLink(unquote(actor_id), unquote(label) or unquote(actor_id)))
    return tuple(links)


def enter_from_header(headers: Any) -> None:
    """Set :data:`CALL_CHAIN` from a request's headers (a mapping with ``get``), in the
    current context: call it in the task that dispatches the request."""
    value = headers.get(CHAIN_HEADER)
    if value:
        CALL_CHAIN.set(parse_header(value))
