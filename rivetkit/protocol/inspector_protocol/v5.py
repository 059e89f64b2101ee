"""inspector-protocol v5: ``Init`` carries the tab config.

Types whose bytes did not change are v4's, reused (``ToServer`` is v4's).
"""

from __future__ import annotations

from typing import NamedTuple

from rivetkit.protocol.inspector_protocol.v4 import (
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
    ToServer,
    ToServerBody,
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


class TabConfigEntry(NamedTuple):
    """An inspector tab: a custom one (``label``/``icon`` set) or a hidden built-in."""

    id: str
    label: str | None
    icon: str | None
    hidden: bool


class Init(NamedTuple):
    """The first message on the inspector socket (v5 form)."""

    connections: list[Connection]
    state: bytes | None
    is_state_enabled: bool
    rpcs: list[str]
    is_database_enabled: bool
    queue_size: Uint
    workflow_history: bytes | None
    is_workflow_enabled: bool
    tab_config: list[TabConfigEntry]


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
