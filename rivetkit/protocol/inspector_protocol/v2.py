"""inspector-protocol v2: the event log is gone; traces, queue and workflow history arrive.

Types whose bytes did not change are v1's, reused.
"""

from __future__ import annotations

from typing import NamedTuple

from rivetkit.protocol.inspector_protocol.v1 import (
    ActionRequest,
    ActionResponse,
    Connection,
    ConnectionsRequest,
    ConnectionsResponse,
    ConnectionsUpdated,
    Error,
    PatchStateRequest,
    RpcsListRequest,
    RpcsListResponse,
    StateRequest,
    StateResponse,
    StateUpdated,
)
from rivetkit.protocol.schema import Uint

__all__ = [
    "ActionRequest",
    "ActionResponse",
    "Connection",
    "ConnectionsRequest",
    "ConnectionsResponse",
    "ConnectionsUpdated",
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
]


class TraceQueryRequest(NamedTuple):
    """Ask for traces between two times (answered with an empty payload: no traces yet)."""

    id: Uint
    start_ms: Uint
    end_ms: Uint
    limit: Uint


class QueueRequest(NamedTuple):
    """Ask for the queue's status with at most ``limit`` messages listed."""

    id: Uint
    limit: Uint


class WorkflowHistoryRequest(NamedTuple):
    """Ask for the workflow history."""

    id: Uint


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
)


class ToServer(NamedTuple):
    """An inspector-to-actor message."""

    body: ToServerBody


class Init(NamedTuple):
    """The first message on the inspector socket (v2 to v4 form)."""

    connections: list[Connection]
    state: bytes | None
    is_state_enabled: bool
    rpcs: list[str]
    is_database_enabled: bool
    queue_size: Uint
    workflow_history: bytes | None
    is_workflow_enabled: bool


class TraceQueryResponse(NamedTuple):
    """Traces (an OTLP payload; empty here), answering the request ``rid``."""

    rid: Uint
    payload: bytes


class QueueMessageSummary(NamedTuple):
    """One queued message."""

    id: Uint
    name: str
    created_at_ms: Uint


class QueueStatus(NamedTuple):
    """The queue: its size, its limit, the first messages, and whether more exist."""

    size: Uint
    max_size: Uint
    messages: list[QueueMessageSummary]
    truncated: bool


class QueueResponse(NamedTuple):
    """The queue's status, answering the request ``rid``."""

    rid: Uint
    status: QueueStatus


class WorkflowHistoryResponse(NamedTuple):
    """The workflow history (None: no workflow), answering the request ``rid``."""

    rid: Uint
    history: bytes | None
    is_workflow_enabled: bool


class QueueUpdated(NamedTuple):
    """Push: the queue's size changed."""

    queue_size: Uint


class WorkflowHistoryUpdated(NamedTuple):
    """Push: the workflow history changed."""

    history: bytes


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
    | Error
    | Init
)


class ToClient(NamedTuple):
    """An actor-to-inspector message."""

    body: ToClientBody
