"""Where an actor instance is in its life: :class:`Phase` (shared by the instance's rooms)."""

from __future__ import annotations

import enum

__all__ = ["Phase"]


class Phase(enum.IntEnum):
    """Where an instance is in its life (RivetKit's task states)."""

    LOADING = 0
    STARTED = 1
    SLEEP_GRACE = 2
    DESTROY_GRACE = 3
    FINALIZING = 4
    TERMINATED = 5
