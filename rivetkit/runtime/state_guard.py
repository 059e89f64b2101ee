"""Refusing state that cannot be saved, and writes that cannot be kept.

An actor's state is saved later than it is written (saves are throttled), so a write that can
never be saved (an object of a class CBOR does not know, a dict that contains itself) or a write
made while storage is failing would otherwise be acknowledged and then lost. The
:class:`StateGuard` of each instance checks the state where it is written instead:

* at the end of every action (and of the ``on_connect``/``on_disconnect`` hooks, and in
  ``c.save_state()``) the state is encoded with CBOR. If that fails, the state goes back to the
  last form known to be saveable (the *checkpoint*, left by the last check that passed) and the
  action fails with ``actor/invalid_state``, naming the offending value's path
  (``state['items'][2]``) in the message and in ``metadata["path"]``;
* while saves fail for another reason (disk full, I/O error), an action that changed the state
  is undone the same way and answers ``actor/state_save_failed``; actions that only read keep
  working, and the save is retried (with backoff) until storage recovers.

Concurrency: actions interleave at ``await`` points, so the checkpoint may hold changes of
other actions still in flight. A restore undoes their changes made since the checkpoint too, so
every action in flight during a restore fails with ``actor/invalid_state`` as well (its
acknowledgement could name a write that was undone); it does not restore again. With
``ActorOptions(serial=True)`` actions never interleave and a restore only undoes the failing
action. Code that keeps a reference into the state across an ``await`` should read ``c.state``
afresh: a restore replaces nested values (the top-level dict or list keeps its identity).

Cost: the check is one C-level CBOR encoding of the state per action (``cbor2.dumps``). The
save's own JSON-compat encoding (slower: Python) runs only when those bytes could hide what it
refuses, nesting of :data:`MAX_DEPTH` levels or an integer too long for ``str()``: 256 or more
bytes that may be array or map headers (non-ASCII text counts), or a long bignum; see
``benchmarks/bench_state_check.py``.
"""

from __future__ import annotations

from typing import Any, Final

import cbor2

from rivetkit.errors import EncodeError, RivetError, actor_error
from rivetkit.protocol.values import MAX_DEPTH, cbor_dumps, cbor_loads
from rivetkit.runtime.state_codec import encode_state

#: Below this many raw CBOR bytes the save's own encoding cannot fail where ``cbor2`` did not:
#: nesting :data:`MAX_DEPTH` levels takes a byte per level, an integer too long for ``str()``
#: (4,300 digits) takes far more.
EXACT_CHECK_FROM: Final = MAX_DEPTH

# Every CBOR array or map header is one of these bytes (other bytes may be too: an overcount
# only sends the check to the exact encoding).
_CONTAINER_HEADS: Final = bytes(range(0x80, 0xC0))
# A bignum (tag 2 or 3) long enough to fail the save's ``str()`` (640 digits at the lowest
# ``sys.set_int_max_str_digits``: 266 bytes) has a 2, 4 or 8-byte length header right after
# its tag; never valid UTF-8, so text does not look like one.
_BIG_INT_HEADS: Final = tuple(
    bytes([tag, head]) for tag in (0xC2, 0xC3) for head in (0x59, 0x5A, 0x5B)
)

#: ``False`` turns the check off for new instances (an internal switch for benchmarks).
ENABLED = True

_SCALARS: Final = (type(None), bool, int, float, str, bytes)
_dumps: Final = cbor2.dumps


class StateGuard:
    """One actor's checkpoint of its last saveable state, and its save-failure flag."""

    __slots__ = (
        "_good",
        "_good_exact",
        "_victim_error",
        "enabled",
        "restores",
        "save_error",
        "save_failures",
    )

    def __init__(self) -> None:
        #: The check runs (False only in benchmarks).
        self.enabled = ENABLED
        self._good: bytes = b"\xf6"  # CBOR null
        self._good_exact = False  # _good is the save's JSON-compat encoding, not raw CBOR
        #: How many times the state was restored (actions in flight across one are refused).
        self.restores = 0
        self._victim_error: RivetError | None = None  # what actions in flight then answer
        #: The error of the last failed save, None when saves work.
        self.save_error: BaseException | None = None
        #: Consecutive failed saves (for the retry backoff).
        self.save_failures = 0

    # -- checking ----------------------------------------------------------------------------

    def checkpoint(self, state: Any) -> bytes:
        """Take ``state`` as the checkpoint (at start) and return the save's encoding of it
        (:func:`~rivetkit.runtime.state_codec.encode_state`); raise ``actor/invalid_state``
        if it cannot be saved."""
        problem = self._encode(state)
        if isinstance(problem, str):
            raise invalid_state(problem, what="the initial state")
        return problem

    def check(self, holder: Any, since: int | None = None, what: str = "the action") -> None:
        """At the end of a write: the state of ``holder`` (an ActorInstance) can be saved and,
        if saves fail, did not change; otherwise restore the checkpoint and raise.

        ``since`` is :attr:`restores` when the action began: a restore in between refuses it.
        """
        try:
            raw: bytes | None = _dumps(holder._state)
        except Exception:
            raw = None
        if (
            raw is not None
            and (len(raw) < EXACT_CHECK_FROM or _surely_saveable(raw))
            and self.save_error is None
            and not self._good_exact
        ):
            self._good = raw  # the fast path: a small state, saves working
        else:
            self._check_slowly(holder, raw, what)
        if since is not None and since != self.restores:
            error = self._victim_error
            if error is not None and error.code == "state_save_failed":
                raise error
            raise actor_error(
                "invalid_state",
                f"{what} was refused: while it ran, the state was restored because another "
                "write left it unsaveable",
                metadata={"path": None, "restored": True},
            )

    def _check_slowly(self, holder: Any, raw: bytes | None, what: str) -> None:
        good, good_exact = self._good, self._good_exact
        if raw is None or good_exact or (raw != good and not _surely_saveable(raw)):
            problem = self._encode(holder._state, raw=raw)
            if isinstance(problem, str):
                raise self._restore(holder, invalid_state(problem, what=what))
        else:
            self._good = raw
        if self.save_error is not None and (self._good, self._good_exact) != (good, good_exact):
            self._good, self._good_exact = good, good_exact
            raise self._restore(holder, save_failed(self.save_error))

    def _encode(self, state: Any, *, raw: bytes | None = None) -> str | bytes:
        """Make ``state`` the checkpoint if it can be saved and return the save's encoding of
        it; else return what is wrong (a ``str``)."""
        if raw is None:
            try:
                raw = cbor2.dumps(state)
            except Exception:
                raw = None
        try:
            exact = encode_state(state)
        except (EncodeError, RecursionError, ValueError, TypeError) as exc:
            return describe(state, exc)
        if raw is not None:
            self._good, self._good_exact = raw, False
        else:  # only the save's own encoding takes it (a Mapping that is not a dict, say)
            self._good, self._good_exact = exact, True
        return exact

    def _restore(self, holder: Any, error: RivetError) -> RivetError:
        """Put the checkpoint back as the state of ``holder``; return ``error``, which actions
        in flight meanwhile answer too."""
        self.restores += 1
        self._victim_error = error
        good = cbor_loads(self._good) if self._good_exact else cbor2.loads(self._good)
        current = holder._state
        # Keep the top-level container's identity: code holding ``s = c.state`` sees it.
        if type(current) is dict and type(good) is dict:
            current.clear()
            current.update(good)
        elif type(current) is list and type(good) is list:
            current[:] = good
        else:
            holder._state = good
        return error

    def recover(self, holder: Any) -> str:
        """The state of ``holder`` failed to encode at save time (changed outside any action,
        e.g. by ``run``): restore the checkpoint and return what was wrong."""
        problem = describe(holder._state, None)
        self._restore(holder, invalid_state(problem, what="a change outside any action"))
        return problem

    # -- saves -------------------------------------------------------------------------------

    def save_failed(self, error: BaseException) -> None:
        """A save failed for a reason other than the state itself."""
        self.save_error = error
        self.save_failures += 1

    def save_worked(self) -> bool:
        """A save succeeded; True if saves had been failing until now."""
        failing = self.save_error is not None
        self.save_error = None
        self.save_failures = 0
        return failing


def _surely_saveable(raw: bytes) -> bool:
    """True when the save's JSON-compat encoding cannot fail on a value ``cbor2`` encoded as
    ``raw``: fewer than :data:`MAX_DEPTH` containers (so no deeper nesting) and no integer
    too long for ``str()``. False means "maybe": the exact encoding decides."""
    size = len(raw)
    if size < EXACT_CHECK_FROM:
        return True
    if size - len(raw.translate(None, _CONTAINER_HEADS)) >= MAX_DEPTH:
        return False
    return not any(head in raw for head in _BIG_INT_HEADS)


#: One sentence on what the state may hold, ending every ``actor/invalid_state`` message.
STATE_VALUES: Final = (
    "state holds None, bool, int, float, str, bytes, and lists, tuples (kept as lists), "
    "sets and dicts of them; see docs/concepts/values.md"
)


class Problem(str):
    """``"<path> <reason>"``, with the path kept apart (a dict key may hold spaces)."""

    path: str

    def __new__(cls, path: str, reason: str) -> Problem:
        problem = super().__new__(cls, f"{path} {reason}")
        problem.path = path
        return problem


def invalid_state(problem: str, *, what: str = "the action") -> RivetError:
    """``actor/invalid_state`` for ``problem`` (``"<path> <reason>"``), path in metadata.

    The message names the offending value's path and type, then says what the state may
    hold (:data:`STATE_VALUES`).
    """
    path = problem.path if isinstance(problem, Problem) else problem.split(" ", 1)[0]
    return actor_error(
        "invalid_state",
        f"{what} left the state unsaveable: {problem}; its changes were undone. {STATE_VALUES}",
        metadata={"path": path},
    )


def save_failed(error: BaseException) -> RivetError:
    """``actor/state_save_failed``: a write refused while saves fail."""
    return actor_error(
        "state_save_failed",
        "the actor cannot save its state right now "
        f"({type(error).__name__}: {error}); changes are refused and the save is retried",
        metadata={"cause": type(error).__name__},
    )


def describe(state: Any, error: BaseException | None) -> str:
    """``"<path> <reason>"`` for the first value of ``state`` that cannot be saved."""
    found = _find(state, "state", set(), 0)
    if found is not None:
        return found
    return Problem("state", "cannot be encoded" + (f" ({error})" if error is not None else ""))


def _find(value: Any, path: str, active: set[int], depth: int) -> Problem | None:
    t = type(value)
    if t in _SCALARS:
        if t is int and value.bit_length() > 2_000:
            try:
                str(value)
            except ValueError:  # beyond sys.get_int_max_str_digits()
                return Problem(path, "is an integer too large to save")
        return None
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        if id(value) in active:
            return Problem(path, "is a container that holds it (a reference cycle)")
        if depth >= MAX_DEPTH:
            return Problem(path, f"nests deeper than {MAX_DEPTH} levels")
        active.add(id(value))
        try:
            if isinstance(value, dict):
                for key, item in value.items():
                    found = _find(item, f"{path}[{key!r}]", active, depth + 1)
                    if found is not None:
                        return found
            else:
                for i, item in enumerate(value):
                    found = _find(item, f"{path}[{i}]", active, depth + 1)
                    if found is not None:
                        return found
        finally:
            active.discard(id(value))
        return None
    try:
        cbor_dumps(value)
    except Exception:
        return Problem(path, f"is of type {t.__name__} ({value!r:.60}), which CBOR cannot store")
    return None
