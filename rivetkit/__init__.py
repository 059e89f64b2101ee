"""rivetkit for Python: stateful actors compatible with RivetKit, byte for byte.

``SPEEDUPS`` is True when the compiled (Cython) twins of the hot paths are active, False when
the pure-Python twins are (``RIVETKIT_PURE=1``, or no compiled build available).
"""

from __future__ import annotations

from rivetkit._twins import speedups_active as _speedups_active
from rivetkit._version import __version__
from rivetkit.actor import ActorDefinition, EventOptions, actor
from rivetkit.dispatch.http import Request, Response
from rivetkit.errors import ProtocolError, RivetError, UserError
from rivetkit.metrics import counters as _metrics  # noqa: F401 - selects the action-stats twin
from rivetkit.options import ActorOptions
from rivetkit.protocol import bare as _bare  # noqa: F401 - selects the codec twin
from rivetkit.registry import Registry, setup
from rivetkit.runtime import dispatch as _dispatch  # noqa: F401 - selects the dispatch twin
from rivetkit.runtime import queuescan as _queuescan  # noqa: F401 - selects the queue scan twin
from rivetkit.runtime import timers as _timers  # noqa: F401 - selects the timer twin

#: True when the compiled twins of the hot paths are in use.
SPEEDUPS: bool = _speedups_active()

__all__ = [
    "SPEEDUPS",
    "ActorDefinition",
    "ActorOptions",
    "EventOptions",
    "ProtocolError",
    "Registry",
    "Request",
    "Response",
    "RivetError",
    "UserError",
    "__version__",
    "actor",
    "setup",
]
