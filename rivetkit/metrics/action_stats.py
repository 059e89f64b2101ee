"""Action recording: the selected twin of :class:`ActionStats` (pure:
:mod:`rivetkit.metrics._action_stats_py`, compiled: ``rivetkit._speedups._action_stats``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivetkit import _twins

if TYPE_CHECKING:
    from rivetkit.metrics._action_stats_py import ActionStats
else:
    ActionStats = _twins.load("_action_stats", "rivetkit.metrics._action_stats_py").ActionStats

__all__ = ["ActionStats"]
