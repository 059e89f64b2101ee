"""inspector-protocol v4: workflow replay.

Types whose bytes did not change are v3's, reused.
"""

from __future__ import annotations

from typing import NamedTuple

from rivetkit.protocol.inspector_protocol.v3 import (
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
    Init,
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
    TraceQueryRequest,
    TraceQueryResponse,
    WorkflowHistoryRequest,
    WorkflowHistoryResponse,
    WorkflowHistoryUpdated,
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
    "StateRequest",
    "StateResponse",
    "StateUpdated",
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


class WorkflowReplayRequest(NamedTuple):
    """Replay the workflow from an entry (or from the start)."""

    id: Uint
    entry_id: str | None


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
)


class ToServer(NamedTuple):
    """An inspector-to-actor message."""

    body: ToServerBody


class WorkflowReplayResponse(NamedTuple):
    """The workflow history after a replay, answering ``rid``."""

    rid: Uint
    history: bytes | None
    is_workflow_enabled: bool


#: The union of actor-to-inspector messages (tags in this order).
ToClientBody = (
    StateResponse
    | ConnectionsResponse
    | ActionResponse
    | ConnectionsUpdated
    | QueueUpdated
    | StateUpdated
    | WorkflowHistoryUpdated
    | RpcsListResponse
    | TraceQueryResponse
    | QueueResponse
    | WorkflowHistoryResponse
    | WorkflowReplayResponse
    | Error
    | Init
    | DatabaseSchemaResponse
    | DatabaseTableRowsResponse
)


class ToClient(NamedTuple):
    """An actor-to-inspector message."""

    body: ToClientBody
