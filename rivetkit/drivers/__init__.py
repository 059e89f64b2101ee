"""Drivers: where actors live, between the runtime and the outside world.

* :mod:`rivetkit.drivers.base`: the :class:`~rivetkit.drivers.base.Driver` protocol the runtime
  talks to, the :class:`~rivetkit.drivers.base.ActorHost` protocol a driver drives, and
  :class:`~rivetkit.drivers.base.ActorRecord`;
* :mod:`rivetkit.drivers.embedded`: the default driver, one SQLite file and in-process
  placement (``EmbeddedDriver``);
* ``rivetkit.drivers.engine``: an envoy of the Rivet Engine.

Nothing is imported here, so importing one driver never loads another's dependencies.
"""
