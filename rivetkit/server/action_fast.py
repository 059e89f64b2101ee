"""The HTTP action fast road: the selected twin of :func:`serve_action` (pure:
``rivetkit.server._action_fast_py``, compiled: ``rivetkit._speedups._action_fast``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivetkit import _twins

if TYPE_CHECKING:
    from rivetkit.server._action_fast_py import serve_action
else:
    serve_action = _twins.load("_action_fast", "rivetkit.server._action_fast_py").serve_action

__all__ = ["serve_action"]
