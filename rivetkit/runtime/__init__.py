"""The actor runtime: live actors over a driver, without HTTP, ASGI or storage of its own.

* :mod:`rivetkit.runtime.live_actors`: :class:`~rivetkit.runtime.live_actors.Runtime`, the
  live actor instances of a process (the ``ActorHost`` a driver drives) and how requests reach
  them;
* :mod:`rivetkit.runtime.instance`: :class:`~rivetkit.runtime.instance.ActorInstance`, one
  live actor: its lifecycle (start, sleep, destroy) and the action path, wiring the rooms below;
* :mod:`rivetkit.runtime.persistence`: dirty tracking, throttled saves with retry, snapshots,
  the final save and ``on_state_change`` (``StatePersistence``);
* :mod:`rivetkit.runtime.state_guard`: refusing unsaveable state and writes while saves fail;
* :mod:`rivetkit.runtime.conns`: opening and closing connections, their hibernation records,
  events and subscriptions (``ActorConns``); :mod:`rivetkit.runtime.connection`: one
  ``Connection``;
* :mod:`rivetkit.runtime.sleep_policy`: what keeps an actor awake, the idle timer and shutdown
  work (``SleepPolicy``); :mod:`rivetkit.runtime.timers`: the process-wide sleep timers (twin);
* :mod:`rivetkit.runtime.context`: ``ActorContext``, the ``c`` that hooks and actions receive;
* :mod:`rivetkit.runtime.hooks`: calling a definition's hooks (initial state and vars);
  :mod:`rivetkit.runtime.action_calls`: the per-definition action table and action deadline;
  :mod:`rivetkit.runtime.action_table`: the action table (twin);
* :mod:`rivetkit.runtime.queue`: the durable queue (``ActorQueue``);
  :mod:`rivetkit.runtime.queue_message`: a received message;
  :mod:`rivetkit.runtime.queue_writes`: the coalesced queue write;
  :mod:`rivetkit.runtime.queue_errors`: its errors; :mod:`rivetkit.runtime.queue_waits`: waits;
  :mod:`rivetkit.runtime.queuescan`: its key scanning (twin);
* :mod:`rivetkit.runtime.schedule`: schedules and alarms (``ActorSchedule``);
  :mod:`rivetkit.runtime.schedule_records`: the stored schedules, their checks and cadence;
* :mod:`rivetkit.runtime.kv`: the actor's own KV (``c.kv``); :mod:`rivetkit.runtime.keys`: the
  KV keys RivetKit persists under;
* :mod:`rivetkit.runtime.phase`: an instance's ``Phase``; :mod:`rivetkit.runtime.lazy_event`:
  ``LazyEvent``, an ``asyncio.Event`` without a waiter deque until someone waits.
"""
