"""The embedded driver (the default): every actor of one process in one SQLite file.

``EmbeddedDriver(data_dir)`` keeps the KV of every actor and the actors table in
``<data_dir>/rivetkit.db`` (WAL mode), written by one dedicated thread with group commit;
starts and stops actors in-process; keeps every actor's alarm under a single loop timer; and
locks the data directory against a second process. Modules:

* :mod:`.driver`: :class:`EmbeddedDriver`, the :class:`~rivetkit.drivers.base.Driver`;
* :mod:`.store`: the SQLite writer thread (group commit, counters, durability notes);
* :mod:`.tables`: the schema and the SQL run on the writer thread;
* :mod:`.placement`: starting, stopping and destroying actors (generations, stop intents);
* :mod:`.alarms`: the alarm heap and its one timer;
* :mod:`.lock`: the data directory lock file;
* :mod:`.offline`: one-off KV access from another process while a server runs
  (``rivetkit inspect token``).
"""

from .driver import EmbeddedDriver

__all__ = ["EmbeddedDriver"]
