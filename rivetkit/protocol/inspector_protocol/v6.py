"""inspector-protocol v6 (current): schedules (list, history, delete, pushes).

Types whose bytes did not change are v5's, reused.
"""

from __future__ import annotations

from typing import NamedTuple

from rivetkit.protocol.inspector_protocol.v5 import (
    ActionRequest,
    ActionResponse,
    Connection,
    ConnectionsRequest,
    ConnectionsResponse,
    ConnectionsUpdated,
    DatabaseSchemaRequest,
    DatabaseSchemaResponse,
    DatabaseTableRowsRequest,
    DatabaseTableRowsResponse,
    Error,
    PatchStateRequest,
    QueueMessageSummary,
    QueueRequest,
    QueueResponse,
    QueueStatus,
    QueueUpdated,
    RpcsListRequest,
    RpcsListResponse,
    StateRequest,
    StateResponse,
    StateUpdated,
    TabConfigEntry,
    TraceQueryRequest,
    TraceQueryResponse,
    WorkflowHistoryRequest,
    WorkflowHistoryResponse,
    WorkflowHistoryUpdated,
    WorkflowReplayRequest,
    WorkflowReplayResponse,
)
from rivetkit.protocol.schema import Uint

__all__ = [
    "ActionRequest",
    "ActionResponse",
    "Connection",
    "ConnectionsRequest",
    "ConnectionsResponse",
    "ConnectionsUpdated",
    "DatabaseSchemaRequest",
    "DatabaseSchemaResponse",
    "DatabaseTableRowsRequest",
    "DatabaseTableRowsResponse",
    "Error",
    "Init",
    "PatchStateRequest",
    "QueueMessageSummary",
    "QueueRequest",
    "QueueResponse",
    "QueueStatus",
    "QueueUpdated",
    "RpcsListRequest",
    "RpcsListResponse",
    "Schedule",
    "ScheduleDeleteRequest",
    "ScheduleDeleteResponse",
    "ScheduleError",
    "ScheduleFire",
    "ScheduleHistoryRequest",
    "ScheduleHistoryResponse",
    "SchedulesRequest",
    "SchedulesResponse",
    "SchedulesUpdated",
    "StateRequest",
    "StateResponse",
    "StateUpdated",
    "TabConfigEntry",
    "ToClient",
    "ToClientBody",
    "ToServer",
    "ToServerBody",
    "TraceQueryRequest",
    "TraceQueryResponse",
    "WorkflowHistoryRequest",
    "WorkflowHistoryResponse",
    "WorkflowHistoryUpdated",
    "WorkflowReplayRequest",
    "WorkflowReplayResponse",
]


class SchedulesRequest(NamedTuple):
    """Ask for every schedule."""

    id: Uint


class ScheduleHistoryRequest(NamedTuple):
    """Ask for the latest runs of a schedule."""

    id: Uint
    schedule_id: str
    limit: Uint


class ScheduleDeleteRequest(NamedTuple):
    """Cancel a schedule."""

    id: Uint
    schedule_id: str
    kind: str


#: The union of inspector-to-actor messages (tags in this order).
ToServerBody = (
    PatchStateRequest
    | StateRequest
    | ConnectionsRequest
    | ActionRequest
    | RpcsListRequest
    | TraceQueryRequest
    | QueueRequest
    | WorkflowHistoryRequest
    | WorkflowReplayRequest
    | DatabaseSchemaRequest
    | DatabaseTableRowsRequest
    | SchedulesRequest
    | ScheduleHistoryRequest
    | ScheduleDeleteRequest
)


class ToServer(NamedTuple):
    """An inspector-to-actor message."""

    body: ToServerBody


class Schedule(NamedTuple):
    """One schedule: a one-shot event or a recurring (cron, every) schedule."""

    id: str
    name: str | None
    kind: str
    action: str
    args: bytes
    next_run_at: Uint
    last_run_at: Uint | None
    expression: str | None
    timezone: str | None
    interval_ms: Uint | None
    max_history: Uint | None


class ScheduleError(NamedTuple):
    """The error of a failed schedule run."""

    group: str
    code: str
    message: str
    metadata: bytes | None


class ScheduleFire(NamedTuple):
    """One run of a schedule."""

    action: str
    scheduled_at: Uint
    fired_at: Uint
    finished_at: Uint | None
    result: str
    error: ScheduleError | None


class Init(NamedTuple):
    """The first message on the inspector socket (v6 form)."""

    connections: list[Connection]
    state: bytes | None
    is_state_enabled: bool
    rpcs: list[str]
    is_database_enabled: bool
    queue_size: Uint
    workflow_history: bytes | None
    is_workflow_enabled: bool
    tab_config: list[TabConfigEntry]
    schedules: list[Schedule]


class SchedulesResponse(NamedTuple):
    """Every schedule, answering ``rid``."""

    rid: Uint
    schedules: list[Schedule]


class ScheduleHistoryResponse(NamedTuple):
    """The latest runs of a schedule, answering ``rid``."""

    rid: Uint
    schedule_id: str
    history: list[ScheduleFire]


class ScheduleDeleteResponse(NamedTuple):
    """Whether the schedule existed and was cancelled, answering ``rid``."""

    rid: Uint
    schedule_id: str
    deleted: bool


class SchedulesUpdated(NamedTuple):
    """Push: the schedules changed."""

    schedules: list[Schedule]


#: The union of actor-to-inspector messages (tags in this order).
ToClientBody = (
    StateResponse
    | ConnectionsResponse
    | ActionResponse
    | ConnectionsUpdated
    | QueueUpdated
    | StateUpdated
    | WorkflowHistoryUpdated
    | SchedulesUpdated
    | RpcsListResponse
    | TraceQueryResponse
    | QueueResponse
    | WorkflowHistoryResponse
    | WorkflowReplayResponse
    | SchedulesResponse
    | ScheduleHistoryResponse
    | ScheduleDeleteResponse
    | Error
    | Init
    | DatabaseSchemaResponse
    | DatabaseTableRowsResponse
)


class ToClient(NamedTuple):
    """An actor-to-inspector message."""

    body: ToClientBody
