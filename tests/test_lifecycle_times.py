"""LifecycleTimes' inline roads (a packed running entry) give the moments its general code does.

Each sequence of lifecycle calls runs twice: once as is, once with the packed entries turned
into the general ``[start, connectable, None]`` list form before each call (which the inline
roads do not take); the reported fields must be the same after every step.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rivetkit.runtime import lifecycle_times
from rivetkit.runtime.lifecycle_times import LifecycleTimes

_IDS = ["a" * 16, "actor-with-an-id-that-does-not-pack"]
_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["starting", "started", "stopping", "stopped"]),
        st.sampled_from(_IDS),
        st.one_of(st.integers(0, 5_000), st.sampled_from([1 << 42, (1 << 42) + 7])),
    ),
    max_size=12,
)


class _General(LifecycleTimes):
    """``starting`` as the general code does it (``_start``, then ``_running``)."""

    __slots__ = ()

    def starting(self, actor_id: str) -> None:
        self._times[actor_id] = lifecycle_times._running(self._start(actor_id)[1], None)


def _unpacked(times: LifecycleTimes) -> None:
    for actor_id, entry in list(times._times.items()):
        if isinstance(entry, int) and entry < 0:
            times._times[actor_id] = list(lifecycle_times._unpack(entry))


@given(_STEPS)
def test_inline_roads_match_the_general_code(steps: list[tuple[str, str, int]]) -> None:
    now = [1.0]
    fast, slow = LifecycleTimes(lambda: now[0]), _General(lambda: now[0])
    for method, actor_id, ms in steps:
        now[0] = ms / 1000
        getattr(fast, method)(actor_id)
        _unpacked(slow)
        getattr(slow, method)(actor_id)
        for other in _IDS:
            expected: Any = slow.fields(other, 0, None)
            assert fast.fields(other, 0, None) == expected


def test_a_new_actors_life() -> None:
    now = [10.0]
    times = LifecycleTimes(lambda: now[0])
    times.starting("a" * 16)
    now[0] = 10.5
    times.started("a" * 16)
    assert times.fields("a" * 16, 0, None)["connectable_ts"] == 10_500
    assert times.fields("a" * 16, 0, None)["start_ts"] == 10_500
    now[0] = 12.0
    times.stopping("a" * 16)
    assert times.fields("a" * 16, 0, None)["connectable_ts"] is None
    times.stopped("a" * 16)
    assert times.fields("a" * 16, 0, None) == {
        "start_ts": 10_500,
        "pending_allocation_ts": None,
        "connectable_ts": None,
        "sleep_ts": 12_000,
    }
