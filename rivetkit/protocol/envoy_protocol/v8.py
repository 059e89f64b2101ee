"""envoy-protocol v8 (engine 2.3.19): the messages of the envoy WebSocket, as schema records.

No ``v8.bare`` file is published; the layout here follows the v8 codec in the npm package
``@rivetkit/engine-envoy-protocol@2.3.19`` (``VERSION = 8``) and is checked against the golden
vectors in ``envoy-protocol-v8.json``. Class names are the type names that codec (and the
vectors) use as union tags; field names are snake_case (``wire_name`` gives the camelCase).

Conventions of this module:

* A ``void`` union member is an empty record (``ToRivetStopping()``), which encodes to nothing
  but its tag.
* A union member that the schema declares as an alias of a list (``ToRivetEvents``,
  ``ToEnvoyCommands``) is a one-field record wrapping that list. A one-field struct is
  byte-identical to its field, so the wire format is unchanged.
* Enums are :class:`enum.IntEnum` with the ``.bare`` spelling (``OK``, ``SLEEP_INTENT``); the
  TypeScript codec and the vectors spell them in PascalCase (``Ok``, ``SleepIntent``), see
  :func:`rivetkit.protocol.envoy_protocol.enum_ts_name`.
* A field named ``index`` shadows :meth:`tuple.index`; it works at runtime, and the mypy
  complaint about the override is silenced on those lines.

Changes from v6: the tunnel message kinds gained HTTP stream flow control (request/response body
window updates and cancels, a reasoned ``RequestAbort``/``ResponseAbort``), ``RequestStart`` and
``WebSocketOpen`` gained ``actor_generation`` and ``RequestStart`` ``response_stream``, and the
SQLite staged-commit messages (``SqliteCommitStage*``/``SqliteCommitFinalize*``) were added,
which moves the tags of the later SQLite members.
"""

from __future__ import annotations

import enum
from typing import Annotated, NamedTuple

from rivetkit.protocol.schema import I64, U16, U32, U64, Fixed, list_alias

# MARK: Core primitives

#: An actor or namespace id.
Id = str
#: A JSON document as text.
Json = str
#: Globally unique id of a gateway instance.
GatewayId = Annotated[bytes, Fixed(4)]
#: Id of a request, unique within its gateway.
RequestId = Annotated[bytes, Fixed(4)]
#: Index of a tunnel message within its request.
MessageIndex = U16

# MARK: KV

KvKey = bytes
KvValue = bytes


class KvMetadata(NamedTuple):
    """Metadata of a stored KV entry: the writer's version and the update time (ms)."""

    version: bytes
    update_ts: I64


class KvListAllQuery(NamedTuple):
    """List every key (void)."""


class KvListRangeQuery(NamedTuple):
    """List the keys from ``start`` to ``end`` (``end`` excluded when ``exclusive``)."""

    start: KvKey
    end: KvKey
    exclusive: bool


class KvListPrefixQuery(NamedTuple):
    """List the keys that start with ``key``."""

    key: KvKey


#: Which keys a :class:`KvListRequest` lists.
KvListQuery = KvListAllQuery | KvListRangeQuery | KvListPrefixQuery


class KvGetRequest(NamedTuple):
    """Read the given keys."""

    keys: list[KvKey]


class KvListRequest(NamedTuple):
    """List keys by query, optionally reversed and limited."""

    query: KvListQuery
    reverse: bool | None
    limit: U64 | None


class KvPutRequest(NamedTuple):
    """Write ``values[i]`` at ``keys[i]``."""

    keys: list[KvKey]
    values: list[KvValue]


class KvDeleteRequest(NamedTuple):
    """Delete the given keys."""

    keys: list[KvKey]


class KvDeleteRangeRequest(NamedTuple):
    """Delete the keys from ``start`` (included) to ``end`` (excluded)."""

    start: KvKey
    end: KvKey


class KvDropRequest(NamedTuple):
    """Delete every key of the actor (void)."""


class KvErrorResponse(NamedTuple):
    """A KV request failed."""

    message: str


class KvGetResponse(NamedTuple):
    """The entries found for a get (missing keys are left out)."""

    keys: list[KvKey]
    values: list[KvValue]
    metadata: list[KvMetadata]


class KvListResponse(NamedTuple):
    """The entries a list query matched."""

    keys: list[KvKey]
    values: list[KvValue]
    metadata: list[KvMetadata]


class KvPutResponse(NamedTuple):
    """A put succeeded (void)."""


class KvDeleteResponse(NamedTuple):
    """A delete or delete-range succeeded (void)."""


class KvDropResponse(NamedTuple):
    """A drop succeeded (void)."""


#: The body of a :class:`ToRivetKvRequest`.
KvRequestData = (
    KvGetRequest
    | KvListRequest
    | KvPutRequest
    | KvDeleteRequest
    | KvDeleteRangeRequest
    | KvDropRequest
)

#: The body of a :class:`ToEnvoyKvResponse`.
KvResponseData = (
    KvErrorResponse
    | KvGetResponse
    | KvListResponse
    | KvPutResponse
    | KvDeleteResponse
    | KvDropResponse
)

# MARK: SQLite

SqlitePgno = U32
SqliteGeneration = U64
SqlitePageBytes = bytes


class SqliteDirtyPage(NamedTuple):
    """A page to write."""

    pgno: SqlitePgno
    bytes: SqlitePageBytes


class SqliteFetchedPage(NamedTuple):
    """A page read back; ``bytes`` is ``None`` for a page that does not exist."""

    pgno: SqlitePgno
    bytes: SqlitePageBytes | None


class SqliteGetPagesRequest(NamedTuple):
    """Read pages, fenced on the generation and head txid the actor expects."""

    actor_id: Id
    pgnos: list[SqlitePgno]
    expected_generation: U64 | None
    expected_head_txid: U64 | None


class SqliteGetPagesOk(NamedTuple):
    """The pages read and the head txid they were read at."""

    pages: list[SqliteFetchedPage]
    head_txid: U64 | None


class SqliteErrorResponse(NamedTuple):
    """A SQLite request failed, as a RivetError shape."""

    group: str
    code: str
    message: str


#: The body of a :class:`ToEnvoySqliteGetPagesResponse`.
SqliteGetPagesResponse = SqliteGetPagesOk | SqliteErrorResponse


class SqliteCommitRequest(NamedTuple):
    """Commit dirty pages in one transaction (the path for small commits)."""

    actor_id: Id
    dirty_pages: list[SqliteDirtyPage]
    db_size_pages: U32
    now_ms: I64
    expected_generation: U64 | None
    expected_head_txid: U64 | None


class SqliteCommitOk(NamedTuple):
    """The commit is visible at ``head_txid``."""

    head_txid: U64 | None


#: The body of a :class:`ToEnvoySqliteCommitResponse`.
SqliteCommitResponse = SqliteCommitOk | SqliteErrorResponse


class SqliteCommitStageBeginRequest(NamedTuple):
    """Start a staged commit (for commits too large for one transaction).

    Staged segments stay invisible until :class:`SqliteCommitFinalizeRequest`. The fences are
    checked before any bytes are staged.
    """

    actor_id: Id
    expected_generation: U64 | None
    expected_head_txid: U64 | None


class SqliteCommitStageBeginOk(NamedTuple):
    """The txid the engine allocated for the staged commit (head + 1)."""

    txid: U64


#: The body of a :class:`ToEnvoySqliteCommitStageBeginResponse`.
SqliteCommitStageBeginResponse = SqliteCommitStageBeginOk | SqliteErrorResponse


class SqliteCommitStageSegmentRequest(NamedTuple):
    """Stage one segment of a commit; ``first_pgno`` is shard-aligned and strictly ascending."""

    actor_id: Id
    expected_generation: U64 | None
    txid: U64
    first_pgno: U32
    dirty_pages: list[SqliteDirtyPage]


class SqliteCommitStageSegmentOk(NamedTuple):
    """A segment was staged; ``staged_bytes`` is the running total."""

    staged_bytes: U64


#: The body of a :class:`ToEnvoySqliteCommitStageSegmentResponse`.
SqliteCommitStageSegmentResponse = SqliteCommitStageSegmentOk | SqliteErrorResponse


class SqliteCommitFinalizeRequest(NamedTuple):
    """Publish a staged commit.

    ``txid`` must still be head + 1; ``segment_first_pgnos`` lists every segment the client
    staged, so a lost segment is rejected rather than published. (The TypeScript codec holds it
    as a ``Uint32Array``; on the wire it is a plain ``list<u32>``.)
    """

    actor_id: Id
    expected_generation: U64 | None
    txid: U64
    new_db_size_pages: U32
    now_ms: I64
    segment_first_pgnos: list[U32]


class SqliteCommitFinalizeOk(NamedTuple):
    """The staged commit is visible at ``head_txid``."""

    head_txid: U64 | None


#: The body of a :class:`ToEnvoySqliteCommitFinalizeResponse`.
SqliteCommitFinalizeResponse = SqliteCommitFinalizeOk | SqliteErrorResponse


class SqliteValueNull(NamedTuple):
    """SQL ``NULL`` (void)."""


class SqliteValueInteger(NamedTuple):
    """A SQL integer."""

    value: I64


class SqliteValueFloat(NamedTuple):
    """A SQL real, as the 8 bytes of its IEEE 754 double (``data[8]``)."""

    value: Annotated[bytes, Fixed(8)]


class SqliteValueText(NamedTuple):
    """A SQL text value."""

    value: str


class SqliteValueBlob(NamedTuple):
    """A SQL blob."""

    value: bytes


#: A statement parameter.
SqliteBindParam = (
    SqliteValueNull | SqliteValueInteger | SqliteValueFloat | SqliteValueText | SqliteValueBlob
)
#: A result cell (the same union as :data:`SqliteBindParam`).
SqliteColumnValue = SqliteBindParam


class SqliteQueryResult(NamedTuple):
    """The columns and rows of an ``exec``."""

    columns: list[str]
    rows: list[list[SqliteColumnValue]]


class SqliteExecuteResult(NamedTuple):
    """The result of one executed statement."""

    columns: list[str]
    rows: list[list[SqliteColumnValue]]
    changes: I64
    last_insert_row_id: I64 | None


class SqliteExecRequest(NamedTuple):
    """Run SQL text (possibly several statements) on the engine, without parameters."""

    namespace_id: Id
    actor_id: Id
    generation: SqliteGeneration
    sql: str


class SqliteExecuteRequest(NamedTuple):
    """Run one statement with optional parameters."""

    namespace_id: Id
    actor_id: Id
    generation: SqliteGeneration
    sql: str
    params: list[SqliteBindParam] | None


class SqliteBatchStatement(NamedTuple):
    """One statement of a batch."""

    sql: str
    params: list[SqliteBindParam] | None


class SqliteExecuteBatchRequest(NamedTuple):
    """Run several statements."""

    namespace_id: Id
    actor_id: Id
    generation: SqliteGeneration
    statements: list[SqliteBatchStatement]


class SqliteExecOk(NamedTuple):
    """An ``exec`` succeeded."""

    result: SqliteQueryResult


class SqliteExecuteOk(NamedTuple):
    """An ``execute`` succeeded."""

    result: SqliteExecuteResult


class SqliteExecuteBatchOk(NamedTuple):
    """A batch succeeded, one result per statement."""

    results: list[SqliteExecuteResult]


#: The body of a :class:`ToEnvoySqliteExecResponse`.
SqliteExecResponse = SqliteExecOk | SqliteErrorResponse
#: The body of a :class:`ToEnvoySqliteExecuteResponse`.
SqliteExecuteResponse = SqliteExecuteOk | SqliteErrorResponse
#: The body of a :class:`ToEnvoySqliteExecuteBatchResponse`.
SqliteExecuteBatchResponse = SqliteExecuteBatchOk | SqliteErrorResponse

# MARK: Actor


class StopCode(enum.IntEnum):
    """How an actor stopped."""

    OK = 0
    ERROR = 1


class ActorName(NamedTuple):
    """Metadata of an actor name the envoy can run."""

    metadata: Json


class ActorConfig(NamedTuple):
    """The identity and input of an actor to start."""

    name: str
    key: str | None
    create_ts: I64
    input: bytes | None


class ActorCheckpoint(NamedTuple):
    """Position of a command or event in the stream of one actor generation."""

    actor_id: Id
    generation: U32
    index: I64  # type: ignore[assignment]  # shadows tuple.index


class ActorIntentSleep(NamedTuple):
    """The actor asks to sleep (void)."""


class ActorIntentStop(NamedTuple):
    """The actor asks to stop (void)."""


#: What the actor asks the engine for.
ActorIntent = ActorIntentSleep | ActorIntentStop


class ActorStateRunning(NamedTuple):
    """The actor is running (void)."""


class ActorStateStopped(NamedTuple):
    """The actor stopped."""

    code: StopCode
    message: str | None


#: An actor's lifecycle state.
ActorState = ActorStateRunning | ActorStateStopped

# MARK: Events


class EventActorIntent(NamedTuple):
    """The actor wants to sleep or stop; the engine answers with a stop command."""

    intent: ActorIntent


class EventActorStateUpdate(NamedTuple):
    """The actor's state changed."""

    state: ActorState


class EventActorSetAlarm(NamedTuple):
    """Wake the actor at ``alarm_ts`` (ms); ``None`` clears the alarm."""

    alarm_ts: I64 | None


#: An event the envoy reports for an actor.
Event = EventActorIntent | EventActorStateUpdate | EventActorSetAlarm


class EventWrapper(NamedTuple):
    """An event and its checkpoint."""

    checkpoint: ActorCheckpoint
    inner: Event


# MARK: Preloaded KV


class PreloadedKvEntry(NamedTuple):
    """A KV entry sent along with a start command."""

    key: KvKey
    value: KvValue
    metadata: KvMetadata


class PreloadedKv(NamedTuple):
    """KV entries preloaded for a starting actor, and which lookups they answer."""

    entries: list[PreloadedKvEntry]
    requested_get_keys: list[KvKey]
    requested_prefixes: list[KvKey]


# MARK: Commands


class HibernatingRequest(NamedTuple):
    """A hibernated WebSocket to restore when the actor starts."""

    gateway_id: GatewayId
    request_id: RequestId


class CommandStartActor(NamedTuple):
    """Start an actor."""

    config: ActorConfig
    hibernating_requests: list[HibernatingRequest]
    preloaded_kv: PreloadedKv | None


class StopActorReason(enum.IntEnum):
    """Why the engine stops an actor."""

    SLEEP_INTENT = 0
    STOP_INTENT = 1
    DESTROY = 2
    GOING_AWAY = 3
    LOST = 4


class CommandStopActor(NamedTuple):
    """Stop an actor."""

    reason: StopActorReason


#: A command the engine sends for an actor.
Command = CommandStartActor | CommandStopActor


class CommandWrapper(NamedTuple):
    """A command and its checkpoint."""

    checkpoint: ActorCheckpoint
    inner: Command


# MARK: Tunnel


class MessageId(NamedTuple):
    """Identity of a tunnel message: gateway, request, and index within the request."""

    gateway_id: GatewayId
    request_id: RequestId
    message_index: MessageIndex


class ToEnvoyRequestStart(NamedTuple):
    """An HTTP request for an actor.

    ``actor_generation`` pins the generation (``None`` from older gateways);
    ``response_stream`` says whether the gateway accepts a streamed response.
    """

    actor_id: Id
    actor_generation: U32 | None
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None
    stream: bool
    response_stream: bool


class ToEnvoyRequestChunk(NamedTuple):
    """A chunk of a streamed request body."""

    body: bytes
    finish: bool


class ToRivetRequestBodyWindowUpdate(NamedTuple):
    """Cumulative request-body bytes the actor has consumed (restores sender credit)."""

    consumed_bytes: U64


class ToRivetRequestBodyCancel(NamedTuple):
    """The actor wants no more request-body bytes; the response may continue (void)."""


class HttpStreamAbortReasonKind(enum.IntEnum):
    """Category of an HTTP stream abort."""

    UNKNOWN = 0
    CANCELLED = 1
    HANDLER_ERROR = 2
    INTERNAL_ERROR = 3


class HttpStreamAbortReason(NamedTuple):
    """Why an HTTP stream was aborted."""

    kind: HttpStreamAbortReasonKind
    detail: str | None


class ToEnvoyRequestAbort(NamedTuple):
    """The gateway aborted a request."""

    actor_id: Id | None
    actor_generation: U32 | None
    reason: HttpStreamAbortReason


class ToEnvoyRequestBodyCancel(NamedTuple):
    """Stop the actor-side request body without cancelling the response (void)."""


class ToRivetResponseStart(NamedTuple):
    """The head (and, unless ``stream``, the whole body) of an HTTP response."""

    status: U16
    headers: dict[str, str]
    body: bytes | None
    stream: bool


class ToRivetResponseChunk(NamedTuple):
    """A chunk of a streamed response body."""

    body: bytes
    finish: bool


class ToEnvoyResponseBodyWindowUpdate(NamedTuple):
    """Cumulative response-body bytes the client has consumed (restores sender credit)."""

    consumed_bytes: U64


class ToRivetResponseAbort(NamedTuple):
    """The actor aborted a response."""

    reason: HttpStreamAbortReason


class ToEnvoyWebSocketOpen(NamedTuple):
    """A client opened a WebSocket to an actor."""

    actor_id: Id
    actor_generation: U32 | None
    path: str
    headers: dict[str, str]


class ToEnvoyWebSocketMessage(NamedTuple):
    """A WebSocket frame from the client."""

    data: bytes
    binary: bool


class ToEnvoyWebSocketClose(NamedTuple):
    """The client closed the WebSocket."""

    code: U16 | None
    reason: str | None


class ToRivetWebSocketOpen(NamedTuple):
    """The actor accepted a WebSocket."""

    can_hibernate: bool


class ToRivetWebSocketMessage(NamedTuple):
    """A WebSocket frame from the actor."""

    data: bytes
    binary: bool


class ToRivetWebSocketMessageAck(NamedTuple):
    """The actor processed incoming messages up to ``index`` (hibernatable sockets)."""

    index: MessageIndex  # type: ignore[assignment]  # shadows tuple.index


class ToRivetWebSocketClose(NamedTuple):
    """The actor closed the WebSocket (or hibernates it)."""

    code: U16 | None
    reason: str | None
    hibernate: bool


#: The payload of a :class:`ToRivetTunnelMessage`.
ToRivetTunnelMessageKind = (
    ToRivetResponseStart
    | ToRivetResponseChunk
    | ToRivetResponseAbort
    | ToRivetRequestBodyWindowUpdate
    | ToRivetRequestBodyCancel
    | ToRivetWebSocketOpen
    | ToRivetWebSocketMessage
    | ToRivetWebSocketMessageAck
    | ToRivetWebSocketClose
)


class ToRivetTunnelMessage(NamedTuple):
    """A tunnel message from the actor to the gateway."""

    message_id: MessageId
    message_kind: ToRivetTunnelMessageKind


#: The payload of a :class:`ToEnvoyTunnelMessage`.
ToEnvoyTunnelMessageKind = (
    ToEnvoyRequestStart
    | ToEnvoyRequestChunk
    | ToEnvoyRequestAbort
    | ToEnvoyRequestBodyCancel
    | ToEnvoyResponseBodyWindowUpdate
    | ToEnvoyWebSocketOpen
    | ToEnvoyWebSocketMessage
    | ToEnvoyWebSocketClose
)


class ToEnvoyTunnelMessage(NamedTuple):
    """A tunnel message from the gateway to the actor."""

    message_id: MessageId
    message_kind: ToEnvoyTunnelMessageKind


class ToEnvoyPing(NamedTuple):
    """Keep-alive; answer with :class:`ToRivetPong` carrying the same ``ts``."""

    ts: I64


# MARK: To Rivet


class ToRivetMetadata(NamedTuple):
    """First message of a session: the actor names this envoy runs, and envoy metadata."""

    prepopulate_actor_names: dict[str, ActorName] | None
    metadata: Json | None


@list_alias
class ToRivetEvents(NamedTuple):
    """Actor events (``list<EventWrapper>`` on the wire; a one-field record is its field)."""

    events: list[EventWrapper]


class ToRivetAckCommands(NamedTuple):
    """Acknowledge commands up to these checkpoints."""

    last_command_checkpoints: list[ActorCheckpoint]


class ToRivetStopping(NamedTuple):
    """The envoy is shutting down gracefully (void)."""


class ToRivetPong(NamedTuple):
    """Answer to :class:`ToEnvoyPing`."""

    ts: I64


class ToRivetKvRequest(NamedTuple):
    """A KV request for an actor; ``request_id`` is chosen by the envoy."""

    actor_id: Id
    request_id: U32
    data: KvRequestData


class ToRivetSqliteGetPagesRequest(NamedTuple):
    """SQLite page read."""

    request_id: U32
    data: SqliteGetPagesRequest


class ToRivetSqliteCommitRequest(NamedTuple):
    """SQLite single-shot commit."""

    request_id: U32
    data: SqliteCommitRequest


class ToRivetSqliteCommitStageBeginRequest(NamedTuple):
    """SQLite staged commit: begin."""

    request_id: U32
    data: SqliteCommitStageBeginRequest


class ToRivetSqliteCommitStageSegmentRequest(NamedTuple):
    """SQLite staged commit: one segment."""

    request_id: U32
    data: SqliteCommitStageSegmentRequest


class ToRivetSqliteCommitFinalizeRequest(NamedTuple):
    """SQLite staged commit: finalize."""

    request_id: U32
    data: SqliteCommitFinalizeRequest


class ToRivetSqliteExecRequest(NamedTuple):
    """SQLite remote exec."""

    request_id: U32
    data: SqliteExecRequest


class ToRivetSqliteExecuteRequest(NamedTuple):
    """SQLite remote execute."""

    request_id: U32
    data: SqliteExecuteRequest


class ToRivetSqliteExecuteBatchRequest(NamedTuple):
    """SQLite remote batch execute."""

    request_id: U32
    data: SqliteExecuteBatchRequest


#: A message from the envoy to the engine (tags 0..14).
ToRivet = (
    ToRivetMetadata
    | ToRivetEvents
    | ToRivetAckCommands
    | ToRivetStopping
    | ToRivetPong
    | ToRivetKvRequest
    | ToRivetTunnelMessage
    | ToRivetSqliteGetPagesRequest
    | ToRivetSqliteCommitRequest
    | ToRivetSqliteCommitStageBeginRequest
    | ToRivetSqliteCommitStageSegmentRequest
    | ToRivetSqliteCommitFinalizeRequest
    | ToRivetSqliteExecRequest
    | ToRivetSqliteExecuteRequest
    | ToRivetSqliteExecuteBatchRequest
)

# MARK: To Envoy


class ProtocolMetadata(NamedTuple):
    """Session parameters the engine announces in :class:`ToEnvoyInit` (ms and bytes)."""

    envoy_lost_threshold: I64
    actor_stop_threshold: I64
    max_response_payload_size: U64


class ToEnvoyInit(NamedTuple):
    """First message of a session."""

    metadata: ProtocolMetadata


@list_alias
class ToEnvoyCommands(NamedTuple):
    """Actor commands (``list<CommandWrapper>`` on the wire; a one-field record is its field)."""

    commands: list[CommandWrapper]


class ToEnvoyAckEvents(NamedTuple):
    """The engine acknowledges events up to these checkpoints."""

    last_event_checkpoints: list[ActorCheckpoint]


class ToEnvoyKvResponse(NamedTuple):
    """Answer to :class:`ToRivetKvRequest` with the same ``request_id``."""

    request_id: U32
    data: KvResponseData


class ToEnvoySqliteGetPagesResponse(NamedTuple):
    """Answer to :class:`ToRivetSqliteGetPagesRequest`."""

    request_id: U32
    data: SqliteGetPagesResponse


class ToEnvoySqliteCommitResponse(NamedTuple):
    """Answer to :class:`ToRivetSqliteCommitRequest`."""

    request_id: U32
    data: SqliteCommitResponse


class ToEnvoySqliteCommitStageBeginResponse(NamedTuple):
    """Answer to :class:`ToRivetSqliteCommitStageBeginRequest`."""

    request_id: U32
    data: SqliteCommitStageBeginResponse


class ToEnvoySqliteCommitStageSegmentResponse(NamedTuple):
    """Answer to :class:`ToRivetSqliteCommitStageSegmentRequest`."""

    request_id: U32
    data: SqliteCommitStageSegmentResponse


class ToEnvoySqliteCommitFinalizeResponse(NamedTuple):
    """Answer to :class:`ToRivetSqliteCommitFinalizeRequest`."""

    request_id: U32
    data: SqliteCommitFinalizeResponse


class ToEnvoySqliteExecResponse(NamedTuple):
    """Answer to :class:`ToRivetSqliteExecRequest`."""

    request_id: U32
    data: SqliteExecResponse


class ToEnvoySqliteExecuteResponse(NamedTuple):
    """Answer to :class:`ToRivetSqliteExecuteRequest`."""

    request_id: U32
    data: SqliteExecuteResponse


class ToEnvoySqliteExecuteBatchResponse(NamedTuple):
    """Answer to :class:`ToRivetSqliteExecuteBatchRequest`."""

    request_id: U32
    data: SqliteExecuteBatchResponse


#: A message from the engine to the envoy (tags 0..13).
ToEnvoy = (
    ToEnvoyInit
    | ToEnvoyCommands
    | ToEnvoyAckEvents
    | ToEnvoyKvResponse
    | ToEnvoyTunnelMessage
    | ToEnvoyPing
    | ToEnvoySqliteGetPagesResponse
    | ToEnvoySqliteCommitResponse
    | ToEnvoySqliteCommitStageBeginResponse
    | ToEnvoySqliteCommitStageSegmentResponse
    | ToEnvoySqliteCommitFinalizeResponse
    | ToEnvoySqliteExecResponse
    | ToEnvoySqliteExecuteResponse
    | ToEnvoySqliteExecuteBatchResponse
)
