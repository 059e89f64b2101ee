"""The connections of one actor: opening, closing, hibernation records and events.

:class:`ActorConns` runs the connection side of an
:class:`~rivetkit.runtime.instance.ActorInstance`: the preflight (``on_before_connect``,
``create_conn_state``) and ``on_connect`` of a new connection, ``on_disconnect`` when it goes,
the records of hibernatable connections at KV ``[2] + id`` (stored, re-saved when they change,
restored at wake), and events (``broadcast``, subscriptions with their ``can_subscribe`` gate).
The connections themselves are :class:`~rivetkit.runtime.connection.Connection` objects in the
instance's ``conns``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from rivetkit.drivers.base import prefix_end
from rivetkit.errors import RivetError, actor_error
from rivetkit.protocol import actor_persist
from rivetkit.protocol.actor_persist import Conn as StoredConn
from rivetkit.protocol.actor_persist import Subscription
from rivetkit.protocol.values import cbor_dumps, cbor_loads
from rivetkit.runtime import keys
from rivetkit.runtime.connection import Connection, ConnTransport, Hibernation
from rivetkit.runtime.hooks import hook_fn as _hook
from rivetkit.runtime.hooks import is_sync as _is_sync
from rivetkit.runtime.phase import Phase
from rivetkit.traces import traced

if TYPE_CHECKING:
    from rivetkit.actor import Hooks
    from rivetkit.runtime.instance import ActorInstance

__all__ = ["MAX_CONN_SAVE_DELAY", "ActorConns", "has_conn_hooks"]

#: Seconds at most between a change of a hibernatable connection and the save of its record.
MAX_CONN_SAVE_DELAY = 5.0
# The end of the hibernated connections' key range (restore lists it at every start).
_CONN_END = prefix_end(keys.CONN_PREFIX)


def has_conn_hooks(hooks: Hooks) -> bool:
    """True when the actor has a connection hook (``on_before_connect``,
    ``create_conn_state``, ``on_connect``, ``on_disconnect``): opening a connection may then
    run the user's code, so it cannot be done at once."""
    return (
        hooks.on_before_connect is not None
        or hooks.create_conn_state is not None
        or hooks.on_connect is not None
        or hooks.on_disconnect is not None
    )


class ActorConns:
    """Opens and closes the connections of one actor, stores the hibernatable ones, and
    delivers its events."""

    __slots__ = (
        "__weakref__",
        "_conn_save",
        "_dirty_conns",
        "_loop",
        "_owner",
    )

    def __init__(self, owner: ActorInstance) -> None:
        self._owner = owner
        self._loop = owner._loop
        # Hibernatable connections whose record must be saved again (see conn_changed).
        self._dirty_conns: set[Connection] | None = None  # (no empty set per actor)
        self._conn_save: asyncio.TimerHandle | None = None

    async def connect(
        self,
        params: Any = None,
        *,
        transport: ConnTransport | None = None,
        hibernatable: bool = False,
        conn_id: str | None = None,
        hibernation: Hibernation | None = None,
    ) -> Connection:
        """Open a connection: preflight, then ``on_connect``; return it once usable.

        Preflight is ``on_before_connect`` and ``create_conn_state``, bounded together by the
        sum of their timeouts (``actor.callback_timed_out``); the connection is in
        ``c.conns`` only after it succeeds, and ``on_connect`` (bounded by
        ``on_connect_timeout``) sees it there. When both preflight hooks are synchronous they
        run inline, without a timer: a synchronous hook cannot be interrupted anyway (the
        same holds for a synchronous ``on_connect``), so the budget bounds only what awaits.
        A hook's error refuses the connection (the transport reports it to the client).

        A connection given ``hibernation`` survives the actor's sleep: its record is stored
        at KV ``[2] + conn_id`` (now, when it changes, and when the actor stops) and restored
        on the next wake (see :mod:`rivetkit.runtime.connection`).
        """
        owner = self._owner
        if owner._gate is not None and owner._gate.busy:  # a blocking action (blocking.py)
            await owner._gate.idle()
        phase = owner.phase
        if phase != Phase.STARTED and phase != Phase.SLEEP_GRACE:
            raise owner._lifecycle_error()
        options = owner.options
        # Holds the idle timer off (it re-checks can_sleep when due).
        owner.sleep_policy.inflight += 1
        since = owner._guard.restores
        try:
            budget = options.on_before_connect_timeout + options.create_conn_state_timeout
            try:
                hooks = owner.definition.hooks
                if _is_sync(hooks.on_before_connect) and _is_sync(hooks.create_conn_state):
                    # Synchronous hooks cannot be timed out: skip wait_for and its task
                    # (most of the cost of an HTTP action's ephemeral connection).
                    state = self._preflight_sync(params)
                    if inspect.isawaitable(state):
                        state = await asyncio.wait_for(state, budget)
                else:
                    state = await asyncio.wait_for(self._preflight(params), budget)
            except asyncio.TimeoutError:
                raise actor_error(
                    "callback_timed_out",
                    f"connection preflight did not finish within {budget:g} s",
                    metadata={"callback": "on_before_connect"},
                ) from None
            conn = Connection(
                params,
                conn_id=conn_id,
                transport=transport,
                hibernatable=hibernatable or hibernation is not None,
            )
            conn.state = state
            conn.owner = owner
            conn.hibernation = hibernation
            owner.conns[conn.id] = conn
            try:
                await self._call_with("on_connect", conn, conn, timeout=options.on_connect_timeout)
                hooks = owner.definition.hooks
                if hooks.on_connect or hooks.on_before_connect or hooks.create_conn_state:
                    owner._after_action(since, what="connecting")
                if hibernation is not None:
                    await self.persist([conn])
            except BaseException:
                owner.conns.pop(conn.id, None)
                conn.disconnected = True
                raise
            if owner.metrics is not None:
                owner.metrics.conns_opened += 1
            if owner.inspector_observer is not None:
                owner.inspector_observer("connections")
            return conn
        finally:
            owner.sleep_policy.end_request()

    def open_plain(self, params: Any, conn_id: str) -> Connection | None:
        """Open a connection at once when nothing can suspend it: no connection hook
        (``on_before_connect``, ``create_conn_state``, ``on_connect``, ``on_disconnect``), no
        blocking action running, no transport, not hibernatable (an HTTP action's temporary
        connection). It does what :meth:`connect` does for such a connection, without its
        coroutine; None when :meth:`connect` must run instead. Close it with
        :meth:`close_plain`."""
        owner = self._owner
        if has_conn_hooks(owner.definition.hooks) or (owner._gate is not None and owner._gate.busy):
            return None
        phase = owner.phase
        if phase != Phase.STARTED and phase != Phase.SLEEP_GRACE:
            raise owner._lifecycle_error()
        conn = Connection(params, conn_id=conn_id)
        conn.state = owner.definition.new_conn_state_value()
        conn.owner = owner
        owner.conns[conn.id] = conn
        if owner.metrics is not None:
            owner.metrics.conns_opened += 1
        if owner.inspector_observer is not None:
            owner.inspector_observer("connections")
        if owner.sleep_policy.inflight == 0:
            owner.sleep_policy.activity_changed()
        return conn

    def close_plain(self, conn: Connection) -> bool:
        """Close a connection of :meth:`open_plain` as :meth:`disconnect` would, at once;
        False (nothing done) when the actor has an ``on_disconnect`` hook to await."""
        owner = self._owner
        if owner.definition.hooks.on_disconnect is not None:
            return False
        if conn.disconnected:
            return True
        self._forget(conn)
        if owner.sleep_policy.inflight == 0:  # else the request's end does it
            owner.sleep_policy.activity_changed()
        return True

    def _forget(self, conn: Connection) -> None:
        """Mark ``conn`` closed and drop it from ``c.conns``, counted and shown."""
        owner = self._owner
        conn.disconnected = True
        owner.conns.pop(conn.id, None)
        if owner.metrics is not None:
            owner.metrics.conns_closed += 1
        if owner.inspector_observer is not None:
            owner.inspector_observer("connections")

    def _preflight_sync(self, params: Any) -> Any:
        """``_preflight`` for synchronous hooks; an awaitable if a hook returned one."""
        owner = self._owner
        check = _hook(owner.definition, "on_before_connect")
        if check is not None:
            result = check(owner.context, params)
            if inspect.isawaitable(result):
                return self._preflight_rest(result, params)
        factory = _hook(owner.definition, "create_conn_state")
        if factory is None:
            return owner.definition.new_conn_state_value()
        return factory(owner.context, params)

    async def _preflight_rest(self, pending: Awaitable[Any], params: Any) -> Any:
        owner = self._owner
        await pending
        factory = _hook(owner.definition, "create_conn_state")
        if factory is None:
            return owner.definition.new_conn_state_value()
        result = factory(owner.context, params)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _preflight(self, params: Any) -> Any:
        owner = self._owner
        await owner._call("on_before_connect", params)
        factory = _hook(owner.definition, "create_conn_state")
        if factory is None:
            return owner.definition.new_conn_state_value()
        result = factory(owner.context, params)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _call_with(
        self, name: str, conn: Connection, *args: Any, timeout: float | None = None
    ) -> Any:
        owner = self._owner
        hook = _hook(owner.definition, name)
        if hook is None:
            return None
        if owner._gate is not None and owner._gate.busy:  # a blocking action (blocking.py)
            await owner._gate.idle()
        with traced(owner.traces, "hook", name, {"rivet.conn.id": conn.id}):
            result = hook(owner.context.with_conn(conn), *args)
            if inspect.isawaitable(result):
                try:
                    return await asyncio.wait_for(result, timeout)
                except asyncio.TimeoutError:
                    raise actor_error(
                        "callback_timed_out",
                        f"{name} did not finish within {timeout:g} s",
                        metadata={"callback": name},
                    ) from None
            return result

    async def persist(self, conns: list[Connection] | None = None) -> None:
        """Store the records of hibernatable connections (``Conn`` v4 at ``[2] + id``)."""
        owner = self._owner
        chosen = [
            c
            for c in (owner.conns.values() if conns is None else conns)
            if c.hibernation is not None and not c.disconnected
        ]
        if not chosen:
            return
        puts = []
        indexes: list[int] = []
        for conn in chosen:
            info = conn.hibernation
            assert info is not None
            indexes.append(info.server_message_index & 0xFFFF)
            record = StoredConn(
                id=conn.id,
                parameters=cbor_dumps(conn.params),
                state=cbor_dumps(conn.state),
                subscriptions=[Subscription(name) for name in sorted(conn.subscriptions)],
                gateway_id=info.gateway_id,
                request_id=info.request_id,
                server_message_index=indexes[-1],
                client_message_index=info.client_message_index & 0xFFFF,
                request_path=info.request_path,
                request_headers=info.request_headers,
            )
            puts.append((keys.conn_key(conn.id), actor_persist.CONN.encode(record)))
        await owner.driver.kv_write(owner.actor_id, puts=puts)
        for conn, index in zip(chosen, indexes):  # stored: acknowledge up to the stored index
            info = conn.hibernation
            if info is not None and info.ack is not None:
                info.ack(index)

    async def restore(self) -> list[Connection]:
        """Rebuild the hibernated connections; return the ones whose socket is gone."""
        owner = self._owner
        entries = await owner.driver.kv_list(owner.actor_id, keys.CONN_PREFIX, _CONN_END)
        dead: list[Connection] = []
        for key, value in entries:
            try:
                record = actor_persist.CONN.decode(value)
            except RivetError:
                owner.log.exception("dropping an unreadable connection record %r", key)
                await owner.driver.kv_write(owner.actor_id, deletes=[key])
                continue
            conn = Connection(
                cbor_loads(record.parameters) if record.parameters else None,
                conn_id=record.id,
                hibernatable=True,
            )
            conn.state = cbor_loads(record.state) if record.state else None
            conn.subscriptions = {s.event_name for s in record.subscriptions}
            conn.owner = owner
            conn.hibernation = Hibernation(
                record.gateway_id,
                record.request_id,
                request_path=record.request_path,
                request_headers=record.request_headers,
                server_message_index=record.server_message_index,
                client_message_index=record.client_message_index,
            )
            alive = owner.conn_alive
            if alive is not None and not alive(conn):
                dead.append(conn)
            else:
                owner.conns[conn.id] = conn
        return dead

    # ---------------------------------------------------------------------------------------
    # Events

    def broadcast(self, event: str, args: tuple[Any, ...] | list[Any]) -> None:
        """Send an event to every connection subscribed to it.

        Every subscriber's transport gets the same ``args`` list. When the first one's class
        has a ``send_event_to_all(transports, event, args)`` (a static method doing
        ``send_event`` on each of ``transports``, whatever their class), it takes them all
        in one call (a broadcast to thousands of sockets: one Python call, not one each).
        """
        targets = [
            conn.transport
            for conn in self._owner.conns.values()
            if event in conn.subscriptions and conn.transport is not None
        ]
        if not targets:
            return
        payload = list(args)  # one list shared by every subscriber
        send_all = getattr(type(targets[0]), "send_event_to_all", None)
        if send_all is not None:
            send_all(targets, event, payload)
            return
        for transport in targets:
            transport.send_event(event, payload)

    def subscribe(
        self, conn: Connection, event: str, subscribe: bool = True
    ) -> Awaitable[None] | None:
        """A client's ``SubscriptionRequest``: (un)subscribe ``conn`` to ``event``.

        Subscribing runs the event's ``can_subscribe`` gate (``EventOptions``) with
        ``c.conn = conn``, unless ``conn`` is already subscribed (requests are idempotent;
        clients re-send them after a reconnect). Returns None when done synchronously (no
        gate, or a synchronous one), otherwise an awaitable the caller must await (an async
        gate). A refusal raises RivetError ``auth.forbidden`` (from the awaitable, for an
        async gate); a gate that returns something other than a bool raises
        ``actor.invalid_subscription_gate`` (internal).
        """
        owner = self._owner
        if not subscribe:
            if event in conn.subscriptions:
                conn.unsubscribe(event)
                self.conn_changed(conn)
            return None
        if event in conn.subscriptions:
            return None
        options = owner.definition.events.get(event)
        gate = None if options is None else options.can_subscribe
        if gate is None:
            conn.subscribe(event)
            self.conn_changed(conn)
            return None
        result = gate(owner.context.with_conn(conn))
        if inspect.isawaitable(result):
            return self._subscribe_later(conn, event, result)
        self._subscribe_checked(conn, event, result)
        return None

    async def _subscribe_later(self, conn: Connection, event: str, pending: Awaitable[Any]) -> None:
        self._subscribe_checked(conn, event, await pending)

    def _subscribe_checked(self, conn: Connection, event: str, allowed: Any) -> None:
        if not isinstance(allowed, bool):
            raise actor_error(
                "invalid_subscription_gate",
                f"can_subscribe of event {event!r} must return a bool, got "
                f"{type(allowed).__name__}",
                metadata={"event": event},
            )
        if not allowed:
            raise RivetError("auth", "forbidden", "Forbidden", metadata={"event": event})
        if not conn.disconnected:
            conn.subscribe(event)
            self.conn_changed(conn)

    def conn_changed(self, conn: Connection) -> None:
        """``conn``'s state, subscriptions or message index may have changed: a hibernatable
        connection's record is saved again, throttled by ``state_save_interval`` but at most
        :data:`MAX_CONN_SAVE_DELAY` later (the engine's gateway wants its messages
        acknowledged, which happens once stored, within 30 s), and always when the actor
        stops."""
        owner = self._owner
        if conn.hibernation is None or conn.disconnected:
            return
        dirty = self._dirty_conns
        if dirty is None:
            self._dirty_conns = {conn}
        else:
            dirty.add(conn)
        if self._conn_save is None and owner.phase <= Phase.SLEEP_GRACE:
            self._conn_save = self._loop.call_later(
                min(owner.options.state_save_interval, MAX_CONN_SAVE_DELAY), self._save_conns_soon
            )

    def _save_conns_soon(self) -> None:
        owner = self._owner
        self._conn_save = None
        dirty, self._dirty_conns = self._dirty_conns, None
        if dirty and owner.phase <= Phase.SLEEP_GRACE:
            owner.sleep_policy.track(self._save_conns(list(dirty)))

    async def _save_conns(self, conns: list[Connection]) -> None:
        owner = self._owner
        try:
            await self.persist(conns)
        except Exception:
            owner.log.exception("saving hibernatable connections failed; retrying")
            for conn in conns:  # saved (and acknowledged) with the next try
                self.conn_changed(conn)

    async def disconnect(self, conn: Connection, reason: str | None = None) -> None:
        """Close a connection: it leaves ``c.conns``, then ``on_disconnect`` runs (the actor
        stays awake until it is done)."""
        owner = self._owner
        if conn.disconnected:
            return
        self._forget(conn)
        owner.sleep_policy.pending_disconnects += 1  # keeps the actor awake until this is done
        try:
            try:
                await self._call_with("on_disconnect", conn, conn)
            except Exception:
                owner.log.exception("on_disconnect failed")
            if owner.definition.hooks.on_disconnect is not None:
                try:
                    owner._after_action(raising=False, what="on_disconnect")
                except RivetError as exc:
                    owner.log.error("after on_disconnect: %s", exc.message)
            if conn.hibernation is not None:
                try:
                    await owner.driver.kv_write(owner.actor_id, deletes=[keys.conn_key(conn.id)])
                except Exception:
                    owner.log.exception("removing the connection record failed")
            if conn.transport is not None:
                conn.transport.close(reason)
        finally:
            owner.sleep_policy.pending_disconnects -= 1
            owner.sleep_policy.activity_changed()
