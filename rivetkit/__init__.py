"""rivetkit for Python: stateful actors compatible with RivetKit, byte for byte.

``SPEEDUPS`` is True when the compiled (Cython) twins of the hot paths are active, False when
the pure-Python twins are (``RIVETKIT_PURE=1``, or no compiled build available).

The top-level names are loaded lazily (PEP 562): ``import rivetkit.client`` or
``import rivetkit.protocol.bare`` loads only what that module needs, not the actor API, the
dispatch routes and the runtime. ``from rivetkit import actor, setup`` works as always.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from rivetkit._version import __version__

if TYPE_CHECKING:
    from rivetkit.actor import ActorDefinition, EventOptions, actor
    from rivetkit.dispatch.http import Request, Response
    from rivetkit.dispatch.sse import ServerSentEvent
    from rivetkit.errors import ProtocolError, RivetError, UserError
    from rivetkit.options import ActorOptions
    from rivetkit.registry import Registry, setup
    from rivetkit.runtime.connection import Connection
    from rivetkit.runtime.context import ActorContext

    #: True when the compiled twins of the hot paths are in use.
    SPEEDUPS: bool

__all__ = [
    "SPEEDUPS",
    "ActorContext",
    "ActorDefinition",
    "ActorOptions",
    "Connection",
    "EventOptions",
    "ProtocolError",
    "Registry",
    "Request",
    "Response",
    "RivetError",
    "ServerSentEvent",
    "UserError",
    "__version__",
    "actor",
    "setup",
]

# Where each lazy top-level name lives.
_EXPORTS: dict[str, str] = {
    "ActorDefinition": "rivetkit.actor",
    "EventOptions": "rivetkit.actor",
    "actor": "rivetkit.actor",
    "Request": "rivetkit.dispatch.http",
    "Response": "rivetkit.dispatch.http",
    "ServerSentEvent": "rivetkit.dispatch.sse",
    "ProtocolError": "rivetkit.errors",
    "RivetError": "rivetkit.errors",
    "UserError": "rivetkit.errors",
    "ActorOptions": "rivetkit.options",
    "Registry": "rivetkit.registry",
    "setup": "rivetkit.registry",
    "Connection": "rivetkit.runtime.connection",
    "ActorContext": "rivetkit.runtime.context",
}

# The selector modules of the hot-path twins: SPEEDUPS loads them all before it answers, so
# it says whether every twin is compiled (and RIVETKIT_REQUIRE_SPEEDUPS=1 fails here if not).
_TWIN_SELECTORS: tuple[str, ...] = (
    "rivetkit.metrics.action_stats",
    "rivetkit.protocol.bare",
    "rivetkit.runtime.action_table",
    "rivetkit.runtime.queuescan",
    "rivetkit.runtime.timers",
    "rivetkit.server.action_fast",
)


def _all_twins_compiled() -> bool:
    from rivetkit import _twins

    for name in _TWIN_SELECTORS:
        importlib.import_module(name)
    return _twins.speedups_active()


def __getattr__(name: str) -> Any:
    """Load a top-level export on first use (PEP 562) and cache it in the module."""
    if name == "SPEEDUPS":
        value: Any = _all_twins_compiled()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, including the lazy exports not loaded yet."""
    return sorted(set(globals()) | set(__all__))


class _Package(ModuleType):
    """The package's module type: ``rivetkit.actor`` stays the decorator.

    Importing the submodule :mod:`rivetkit.actor` makes the import system set the package's
    ``actor`` attribute to that submodule; the eager imports used to overwrite it with the
    decorator right away. Ignoring that one assignment keeps ``rivetkit.actor`` (and
    ``from rivetkit import actor``) the decorator, served by :func:`__getattr__`.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
