"""inspector-protocol v3: the SQL database tab (schema and table rows).

Types whose bytes did not change are v2's, reused.
"""

from __future__ import annotations

from typing import NamedTuple

from rivetkit.protocol.inspector_protocol.v2 import (
    ActionRequest,
    ActionResponse,
    Connection,
    ConnectionsRequest,
    ConnectionsResponse,
    ConnectionsUpdated,
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
]


class DatabaseSchemaRequest(NamedTuple):
    """Ask for the SQL database's tables and columns."""

    id: Uint


class DatabaseTableRowsRequest(NamedTuple):
    """Ask for rows of one table."""

    id: Uint
    table: str
    limit: Uint
    offset: Uint


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
    | DatabaseSchemaRequest
    | DatabaseTableRowsRequest
)


class ToServer(NamedTuple):
    """An inspector-to-actor message."""

    body: ToServerBody


class DatabaseSchemaResponse(NamedTuple):
    """The database schema (a CBOR map ``{"tables": [...]}``), answering ``rid``."""

    rid: Uint
    schema: bytes


class DatabaseTableRowsResponse(NamedTuple):
    """Rows of a table (a CBOR array of maps), answering ``rid``."""

    rid: Uint
    result: bytes


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
    | DatabaseSchemaResponse
    | DatabaseTableRowsResponse
)


class ToClient(NamedTuple):
    """An actor-to-inspector message."""

    body: ToClientBody
