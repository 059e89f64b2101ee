"""Actor options: RivetKit's ``options`` object, in snake_case, with durations in seconds.

RivetKit spells its options in camelCase with durations in milliseconds
(``actionTimeout: 60000``); here they are snake_case with durations in seconds as floats
(``action_timeout=60.0``). The wire and the disk keep milliseconds; converting is the
runtime's job. Defaults are RivetKit's (runtime spec §1).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rivetkit.validation import is_async_callable

__all__ = ["ActorOptions", "CanHibernateWebSocket"]

#: ``can_hibernate_websocket``: a bool, or a synchronous predicate given the upgrade request.
CanHibernateWebSocket = bool | Callable[[Any], bool]

# Sizes and counts travel as u32 in RivetKit's configuration.
_U32_MAX = 2**32 - 1

# Durations that may be 0: a state save interval of 0 saves at every change.
_ZERO_OK_DURATIONS = frozenset({"state_save_interval"})
_DEFAULT_SLEEP_GRACE_PERIOD = 15.0


@dataclass(frozen=True, kw_only=True, slots=True)
class ActorOptions:
    """The options of an actor, given as ``actor(..., options=ActorOptions(...))``.

    Every field is keyword-only and validated on construction: a duration must be a finite
    ``int`` or ``float`` greater than 0 (``state_save_interval`` may be 0, meaning "save
    at every change"); a size or count must be an ``int`` from 1 to 2**32 - 1; a flag must be
    a real ``bool``. A bad value raises :exc:`TypeError` (wrong type) or :exc:`ValueError`
    (out of range), naming the option and the value. Durations are stored as given (an
    ``int`` stays an ``int``).

    Options, with RivetKit's name and default:

    - ``state_save_interval`` (``stateSaveInterval``, 1.0 s): minimum time between two saves
      of changed state.
    - ``action_timeout`` (``actionTimeout``, 60.0 s): an action running longer fails with
      ``actor.action_timed_out``; it also bounds ``on_request``.
    - ``create_vars_timeout`` (5.0 s), ``create_conn_state_timeout`` (5.0 s),
      ``on_before_connect_timeout`` (5.0 s), ``on_connect_timeout`` (5.0 s),
      ``on_migrate_timeout`` (30.0 s): a hook running longer fails with
      ``actor.callback_timed_out``.
    - ``sleep_timeout`` (``sleepTimeout``, 30.0 s): idle time before an actor sleeps.
    - ``sleep_grace_period`` (``sleepGracePeriod``, 15.0 s): how long shutdown (sleep or
      destroy) may take: ``on_sleep``/``on_destroy``, ``run``, ``wait_until`` tasks.
    - ``no_sleep`` (``noSleep``, False; deprecated in RivetKit): never sleep when idle.
    - ``max_queue_size`` (1000 messages), ``max_queue_message_size`` (65536 bytes, measured
      on the encoded message).
    - ``max_schedules`` (1000): one-shot and recurring schedules combined.
    - ``max_incoming_message_size`` (65536 bytes), ``max_outgoing_message_size``
      (1048576 bytes): bounds of client messages in each direction.
    - ``connection_liveness_timeout`` (2.5 s), ``connection_liveness_interval`` (5.0 s):
      carried for compatibility; RivetKit's core does not read them either.
    - ``can_hibernate_websocket`` (False): whether raw ``on_websocket`` sockets survive
      sleep; a bool, or a synchronous callable given the upgrade request (path as
      ``on_websocket`` sees it) that returns a bool. Actor-connect sockets (``/connect``)
      hibernate regardless. Any open raw socket keeps its actor awake (RivetKit's sleep
      rule); one that may not hibernate is closed (1001) when the actor stops (``c.sleep()``,
      destroy, shutdown); one that may gets a connection (``c.conn``, its state kept across
      the sleep) and its handler is called again after the wake (see
      :mod:`rivetkit.dispatch.hibernation`).

    Deprecated in RivetKit, accepted and validated for compatibility (``None`` = not set):

    - ``on_sleep_timeout``, ``on_destroy_timeout``, ``wait_until_timeout``: the grace
      period bounds these phases. As in RivetKit, setting ``on_sleep_timeout`` while leaving
      ``sleep_grace_period`` at its default lengthens the grace period; see
      :attr:`effective_sleep_grace_period`.

    Ours, beyond RivetKit:

    - ``serial`` (False): run actions, schedules and queue deliveries of one actor one at a
      time instead of interleaving them at ``await`` points.
    - ``durable_replies`` (False): hold each action's reply and events until the state
      change that produced them is saved.
    - ``slow_sync_action_warning`` (0.1 s; None: off): a sync action (without
      ``blocking=True``) that holds the event loop longer logs a warning, once per action
      per process (see :mod:`rivetkit.runtime.blocking`).
    - ``traces`` (True): record spans of actions, hooks, queue receives and schedule runs
      in the actor's KV, for the inspector's trace query (see :mod:`rivetkit.traces`;
      ``RIVETKIT_TRACES=0`` turns them off for the whole process).
    - ``traces_max_bytes`` (1048576 bytes): bound of the stored traces of one actor; the
      oldest chunks are deleted first.
    """

    state_save_interval: float = 1.0
    action_timeout: float = 60.0
    create_vars_timeout: float = 5.0
    create_conn_state_timeout: float = 5.0
    on_before_connect_timeout: float = 5.0
    on_connect_timeout: float = 5.0
    on_migrate_timeout: float = 30.0
    sleep_timeout: float = 30.0
    sleep_grace_period: float = _DEFAULT_SLEEP_GRACE_PERIOD
    no_sleep: bool = False
    max_queue_size: int = 1000
    max_queue_message_size: int = 65536
    max_schedules: int = 1000
    max_incoming_message_size: int = 65536
    max_outgoing_message_size: int = 1048576
    connection_liveness_timeout: float = 2.5
    connection_liveness_interval: float = 5.0
    can_hibernate_websocket: CanHibernateWebSocket = False
    on_sleep_timeout: float | None = None
    on_destroy_timeout: float | None = None
    wait_until_timeout: float | None = None
    serial: bool = False
    durable_replies: bool = False
    slow_sync_action_warning: float | None = 0.1
    traces: bool = True
    traces_max_bytes: int = 1048576

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = _KINDS[f.name]
            if kind == "duration":
                _check_duration(f.name, value, zero_ok=f.name in _ZERO_OK_DURATIONS)
            elif kind == "optional_duration":
                if value is not None:
                    _check_duration(f.name, value, zero_ok=False)
            elif kind == "size":
                _check_size(f.name, value)
            elif kind == "bool":
                _check_bool(f.name, value)
            else:
                _check_can_hibernate(f.name, value)

    def replace(self, **changes: Any) -> ActorOptions:
        """A copy with ``changes`` applied, validated like a new instance.

        :raises TypeError: for an unknown option name or a value of the wrong type
        :raises ValueError: for a value out of range
        """
        return dataclasses.replace(self, **changes)

    @property
    def effective_sleep_grace_period(self) -> float:
        """The grace period shutdown gets, in seconds.

        ``sleep_grace_period``, except when it was left at its default and the deprecated
        ``on_sleep_timeout`` is set: then ``on_sleep_timeout + 15.0`` (RivetKit's rule).
        """
        if (
            self.on_sleep_timeout is not None
            and self.sleep_grace_period == _DEFAULT_SLEEP_GRACE_PERIOD
        ):
            return self.on_sleep_timeout + _DEFAULT_SLEEP_GRACE_PERIOD
        return self.sleep_grace_period


_KINDS: dict[str, str] = {
    "state_save_interval": "duration",
    "action_timeout": "duration",
    "create_vars_timeout": "duration",
    "create_conn_state_timeout": "duration",
    "on_before_connect_timeout": "duration",
    "on_connect_timeout": "duration",
    "on_migrate_timeout": "duration",
    "sleep_timeout": "duration",
    "sleep_grace_period": "duration",
    "no_sleep": "bool",
    "max_queue_size": "size",
    "max_queue_message_size": "size",
    "max_schedules": "size",
    "max_incoming_message_size": "size",
    "max_outgoing_message_size": "size",
    "connection_liveness_timeout": "duration",
    "connection_liveness_interval": "duration",
    "can_hibernate_websocket": "can_hibernate",
    "on_sleep_timeout": "optional_duration",
    "on_destroy_timeout": "optional_duration",
    "wait_until_timeout": "optional_duration",
    "serial": "bool",
    "durable_replies": "bool",
    "slow_sync_action_warning": "optional_duration",
    "traces": "bool",
    "traces_max_bytes": "size",
}


def _check_duration(name: str, value: object, *, zero_ok: bool) -> None:
    if type(value) is not int and type(value) is not float:
        raise TypeError(
            f"ActorOptions.{name} must be a number of seconds (int or float), "
            f"got {type(value).__name__} {value!r}"
        )
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ValueError(
            f"ActorOptions.{name} must be a finite number of seconds {bound}, got {value!r}"
        )


def _check_size(name: str, value: object) -> None:
    if type(value) is not int:
        raise TypeError(f"ActorOptions.{name} must be an int, got {type(value).__name__} {value!r}")
    if not 1 <= value <= _U32_MAX:
        raise ValueError(f"ActorOptions.{name} must be from 1 to {_U32_MAX}, got {value!r}")


def _check_bool(name: str, value: object) -> None:
    if type(value) is not bool:
        raise TypeError(f"ActorOptions.{name} must be a bool, got {type(value).__name__} {value!r}")


def _check_can_hibernate(name: str, value: object) -> None:
    if type(value) is bool:
        return
    if not callable(value):
        raise TypeError(
            f"ActorOptions.{name} must be a bool or a callable taking the request, "
            f"got {type(value).__name__} {value!r}"
        )
    if is_async_callable(value):
        raise TypeError(
            f"ActorOptions.{name} must be a synchronous callable returning a bool, "
            f"got the async callable {value!r}"
        )
