"""The action table: the selected twin of :class:`ActionTable` (pure: ``_dispatch_py``,
compiled: ``rivetkit._speedups._dispatch``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivetkit import _twins

if TYPE_CHECKING:
    from rivetkit.runtime._dispatch_py import ActionTable, action_not_found
else:
    _impl = _twins.load("_dispatch", "rivetkit.runtime._dispatch_py")
    ActionTable = _impl.ActionTable
    from rivetkit.runtime._dispatch_py import action_not_found

__all__ = ["ActionTable", "action_not_found"]
