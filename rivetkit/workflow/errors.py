"""The errors of the workflow engine: the ones user code raises or catches, and the internal
control-flow errors that suspend a run (spec workflows.md §1.3-§1.12).

User-facing: :class:`CriticalError` and :class:`RollbackError` (raised in a step body: no
retry), :class:`StepExhaustedError`, :class:`HistoryDivergedError`, :class:`JoinError`,
:class:`RaceError`, ... Their ``name`` is RivetKit's class name, which is what the workflow's
error record (``[3,3]``) and the inspector show.

Control flow (never seen by user code unless it catches everything): :class:`SleepError`
(wait until a deadline), :class:`MessageWaitError` (wait for queue messages),
:class:`StepFailedError` (a step failed and retries later), :class:`EvictedError` (the actor is
stopping), :class:`RollbackStopError` (rollback replay reached unfinished history).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ControlFlow",
    "CriticalError",
    "EntryInProgressError",
    "EvictedError",
    "HistoryDivergedError",
    "JoinError",
    "MessageWaitError",
    "RaceError",
    "RollbackCheckpointError",
    "RollbackError",
    "RollbackStopError",
    "SleepError",
    "StepExhaustedError",
    "StepFailedError",
    "StepTimeoutError",
    "WorkflowError",
]


class WorkflowError(Exception):
    """Base class of the workflow engine's errors."""

    #: The error's name as RivetKit writes it in the workflow's error record.
    name = "WorkflowError"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def metadata(self) -> dict[str, Any]:
        """The error's own fields, written as ``metadata`` of the error record."""
        return {}


class CriticalError(WorkflowError):
    """Raise in a step body to fail the step at once, without retries."""

    name = "CriticalError"


class RollbackError(WorkflowError):
    """Raise in a step body to fail the step at once and roll the workflow back."""

    name = "RollbackError"


class StepTimeoutError(CriticalError):
    """A step attempt ran longer than its ``timeout``."""

    name = "StepTimeoutError"


class StepExhaustedError(WorkflowError):
    """A step failed more often than its ``max_retries`` allow."""

    name = "StepExhaustedError"

    def __init__(self, step_name: str, last_error: str | None) -> None:
        super().__init__(f'Step "{step_name}" exhausted retries: {last_error}')
        self.step_name = step_name
        self.last_error = last_error

    def metadata(self) -> dict[str, Any]:
        """``stepName`` and ``lastError``, as RivetKit records them."""
        return {"stepName": self.step_name, "lastError": self.last_error}


class HistoryDivergedError(WorkflowError):
    """The code no longer matches the recorded history (a non-deterministic change)."""

    name = "HistoryDivergedError"


class EntryInProgressError(WorkflowError):
    """A second primitive was started on a context before the first one finished."""

    name = "EntryInProgressError"

    def __init__(self) -> None:
        super().__init__(
            "Cannot start a new workflow entry while another is in progress. "
            "Did you forget to await the previous step/loop/sleep?"
        )


class RollbackCheckpointError(WorkflowError):
    """A step with ``rollback`` ran without an earlier ``rollback_checkpoint``."""

    name = "RollbackCheckpointError"

    def __init__(self) -> None:
        super().__init__("Rollback requires a checkpoint before any rollback step")


class JoinError(WorkflowError):
    """One or more branches of a join failed (``errors``: branch name -> exception)."""

    name = "JoinError"

    def __init__(self, errors: dict[str, BaseException]) -> None:
        super().__init__(f"Join failed: {', '.join(errors)}")
        self.errors = errors


class RaceError(WorkflowError):
    """Every branch of a race failed (``errors``: ``[(branch name, exception)]``)."""

    name = "RaceError"

    def __init__(self, message: str, errors: list[tuple[str, BaseException]]) -> None:
        super().__init__(message)
        self.errors = errors


class ControlFlow(Exception):
    """Base of the internal errors that suspend or stop a run (rethrown by ``try_*``)."""

    name = "ControlFlow"


class SleepError(ControlFlow):
    """Suspend until ``deadline`` (ms since the epoch), or a message of ``names`` arrives."""

    name = "SleepError"

    def __init__(self, deadline: int, names: list[str] | None = None) -> None:
        super().__init__(f"Sleeping until {deadline}")
        self.deadline = deadline
        self.names = names


class MessageWaitError(ControlFlow):
    """Suspend until a queue message with one of ``names`` arrives (empty: any)."""

    name = "MessageWaitError"

    def __init__(self, names: list[str]) -> None:
        super().__init__(f"Waiting for messages: {', '.join(names) or '*'}")
        self.names = names


class StepFailedError(ControlFlow):
    """A step attempt failed; it is retried at ``retry_at`` (ms since the epoch)."""

    name = "StepFailedError"

    def __init__(self, step_name: str, error: BaseException, attempts: int, retry_at: int) -> None:
        super().__init__(f'Step "{step_name}" failed (attempt {attempts}): {error}')
        self.step_name = step_name
        self.error = error
        self.attempts = attempts
        self.retry_at = retry_at


class EvictedError(ControlFlow):
    """The actor is stopping (sleep or destroy): the run ends, to be replayed on wake."""

    name = "EvictedError"

    def __init__(self) -> None:
        super().__init__("Workflow evicted")


class RollbackStopError(ControlFlow):
    """Rollback replay reached an entry that never completed: handlers run from here."""

    name = "RollbackStopError"

    def __init__(self) -> None:
        super().__init__("Rollback replay stopped at unfinished history")
