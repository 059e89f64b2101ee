"""inspector-protocol: the messages between the actor inspector (dashboard) and an actor,
versions 1 to 6.

The inspector WebSocket (``/inspector/connect``) carries one binary BARE message per frame:

* with ``?protocol_version=N`` (1..6) every frame is a plain BARE value of version ``N``, with
  no prefix, in both directions;
* without it (legacy mode) every frame carries vbare's 2-byte little-endian version first. The
  server reads any version 1..6; it writes ``Init`` (sent before the client has spoken) in
  version 5 (:data:`LEGACY_VERSION`, as RivetKit does) and every later frame in the version
  of the client's frames (``embedded=True`` below).

Inside, message bodies are version 6 records (:mod:`.v6`); every version reuses the record
classes of the types whose bytes did not change, so most bodies are shared between versions.

* :func:`decode_request` reads a client frame into its version and a v6 request body (v1's
  events requests stay v1 bodies: the server answers them with an empty event list);
  :func:`decode_to_server` is the same without the version, and refuses v1's events requests
  with a :class:`~rivetkit.errors.ProtocolError`.
* :func:`encode_to_client` writes a v6 body in the client's version. A response or push with no
  form in that version becomes an explicit ``Error`` whose message names what was dropped
  (``inspector.queue_dropped``, ``inspector.workflow_history_dropped``,
  ``inspector.trace_dropped``, ``inspector.database_dropped``,
  ``inspector.schedules_dropped``); ``Init`` loses the fields its version lacks.
* :func:`encode_to_server` and :func:`decode_to_client` are the client side (tests, tools).

Pure data in, bytes out: no I/O. :func:`build` makes the codecs over a given codec engine twin.
Decoding errors are ProtocolErrors with code ``invalid_inspector_message``.

``data`` fields hold CBOR: the state and action arguments/outputs as the actor stores them
(:func:`rivetkit.protocol.values.cbor_dumps`), connection details, database schema and
rows as plain CBOR maps and arrays.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Final, NamedTuple

from rivetkit.errors import EncodeError, ProtocolError
from rivetkit.protocol.bare import ENGINE, Codec
from rivetkit.protocol.inspector_protocol import v1, v2, v3, v4, v5, v6
from rivetkit.protocol.inspector_protocol.v6 import (
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
    Schedule,
    ScheduleDeleteRequest,
    ScheduleDeleteResponse,
    ScheduleError,
    ScheduleFire,
    ScheduleHistoryRequest,
    ScheduleHistoryResponse,
    SchedulesRequest,
    SchedulesResponse,
    SchedulesUpdated,
    StateRequest,
    StateResponse,
    StateUpdated,
    TabConfigEntry,
    ToClient,
    ToClientBody,
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
from rivetkit.protocol.schema import plan_of

__all__ = [
    "CURRENT_VERSION",
    "ERROR_CODE",
    "LEGACY_VERSION",
    "VERSIONS",
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
    "Handlers",
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
    "body_for_version",
    "build",
    "decode_request",
    "decode_to_client",
    "decode_to_server",
    "encode_to_client",
    "encode_to_server",
    "v1",
    "v2",
    "v3",
    "v4",
    "v5",
    "v6",
]

#: The latest version (its records are the bodies the runtime handles).
CURRENT_VERSION: Final = 6
#: The version of ``Init`` (and of anything sent before the client's first frame) in legacy
#: mode (no ``protocol_version`` query parameter), as RivetKit 2.3.19 writes it.
LEGACY_VERSION: Final = 5
#: Every version a client may ask for.
VERSIONS: Final = range(1, CURRENT_VERSION + 1)
#: Error code of frames that do not decode.
ERROR_CODE: Final = "invalid_inspector_message"

_MODULES: Final[dict[int, ModuleType]] = {1: v1, 2: v2, 3: v3, 4: v4, 5: v5, 6: v6}


def _members(union: Any) -> frozenset[type]:
    return frozenset(getattr(union, "__args__", (union,)))


#: Body classes of each version's unions.
_SERVER_MEMBERS: Final = {n: _members(m.ToServerBody) for n, m in _MODULES.items()}
_CLIENT_MEMBERS: Final = {n: _members(m.ToClientBody) for n, m in _MODULES.items()}

# What a response or push becomes when the client's version has no form for it.
_DROPPED: Final[dict[type, str]] = {
    QueueUpdated: "inspector.queue_dropped",
    QueueResponse: "inspector.queue_dropped",
    WorkflowHistoryUpdated: "inspector.workflow_history_dropped",
    WorkflowHistoryResponse: "inspector.workflow_history_dropped",
    WorkflowReplayResponse: "inspector.workflow_history_dropped",
    TraceQueryResponse: "inspector.trace_dropped",
    DatabaseSchemaResponse: "inspector.database_dropped",
    DatabaseTableRowsResponse: "inspector.database_dropped",
    SchedulesUpdated: "inspector.schedules_dropped",
    SchedulesResponse: "inspector.schedules_dropped",
    ScheduleHistoryResponse: "inspector.schedules_dropped",
    ScheduleDeleteResponse: "inspector.schedules_dropped",
}


class Handlers(NamedTuple):
    """The codecs of every version (``ToServer`` and ``ToClient``), over one engine twin."""

    to_server: dict[int, Codec]
    to_client: dict[int, Codec]


def build(engine: ModuleType = ENGINE) -> Handlers:
    """Compile the codecs over a codec engine twin (the selected one unless one is given)."""
    to_server: dict[int, Codec] = {}
    to_client: dict[int, Codec] = {}
    cache: dict[type, Codec] = {}
    for version, module in _MODULES.items():
        for table, tp in ((to_server, module.ToServer), (to_client, module.ToClient)):
            codec = cache.get(tp)
            if codec is None:
                codec = cache[tp] = engine.compile_plan(plan_of(tp), ERROR_CODE)
            table[version] = codec
    return Handlers(to_server, to_client)


_default = build()


def _check_version(version: int) -> None:
    if version not in VERSIONS:
        raise ProtocolError(
            f"unsupported inspector protocol version {version} (supported: 1 to {CURRENT_VERSION})",
            code=ERROR_CODE,
        )


def _init_for(init: Init, version: int) -> Any:
    if version >= 6:
        return init
    if version == 5:
        return v5.Init(*init[:9])
    if version >= 2:
        return v2.Init(*init[:8])
    return v1.Init(
        connections=init.connections,
        events=[],
        state=init.state,
        is_state_enabled=init.is_state_enabled,
        rpcs=init.rpcs,
        is_database_enabled=init.is_database_enabled,
    )


def body_for_version(body: Any, version: int) -> Any:
    """The v6 ``ToClient`` body ``body`` as version ``version`` writes it: itself, ``Init``
    without the fields that version lacks, or an ``Error`` naming what was dropped."""
    if type(body) is Init:
        return _init_for(body, version)
    if type(body) in _CLIENT_MEMBERS[version]:
        return body
    dropped = _DROPPED.get(type(body))
    if dropped is None:
        raise EncodeError(f"{type(body).__name__} is not an inspector ToClient body")
    return Error(dropped)


def _prefix(version: int | None, embedded: bool) -> tuple[int, bytes]:
    """The (checked) version to write and the frame's prefix: None is legacy mode's
    :data:`LEGACY_VERSION` with its prefix; ``embedded`` puts ``version``'s prefix first."""
    if version is None:
        version, embedded = LEGACY_VERSION, True
    _check_version(version)
    return version, version.to_bytes(2, "little") if embedded else b""


def encode_to_client(
    body: Any, version: int | None, *, embedded: bool = False, handlers: Handlers = _default
) -> bytes:
    """One server-to-inspector frame: ``body`` (a v6 ``ToClient`` body, or v1's
    ``EventsResponse``) in ``version``; ``embedded``: with the version's 2-byte prefix (legacy
    mode); None: legacy mode's :data:`LEGACY_VERSION` with its prefix."""
    version, prefix = _prefix(version, embedded)
    message = _MODULES[version].ToClient(body_for_version(body, version))
    return handlers.to_client[version].encode(message, prefix)


def _frame_version(data: bytes, version: int | None) -> tuple[int, int]:
    """The (checked) version of a frame and the offset of its body: ``version`` and 0, or in
    legacy mode (None) the version read from the frame's 2-byte little-endian prefix and 2."""
    offset = 0
    if version is None:
        if len(data) < 2:
            raise ProtocolError("inspector frame shorter than its version prefix", code=ERROR_CODE)
        version = data[0] | (data[1] << 8)
        offset = 2
    _check_version(version)
    return version, offset


def decode_request(
    data: bytes, version: int | None, *, handlers: Handlers = _default
) -> tuple[int, Any]:
    """The version and request body of one inspector-to-server frame of ``version`` (None:
    legacy mode, the version read from the frame's 2-byte prefix). Bodies are v6 records,
    except v1's ``EventsRequest`` and ``ClearEventsRequest`` (no later form).

    :raises ProtocolError: bytes that do not decode, or an unknown version
    """
    version, offset = _frame_version(data, version)
    return version, handlers.to_server[version].decode(bytes(data), offset).body


def decode_to_server(data: bytes, version: int | None, *, handlers: Handlers = _default) -> Any:
    """The v6 request body of one inspector-to-server frame of ``version`` (None: legacy
    mode, the version read from the frame's 2-byte prefix).

    :raises ProtocolError: bytes that do not decode, an unknown version, or a v1 events
        request (it has no v6 form)
    """
    body = decode_request(data, version, handlers=handlers)[1]
    if type(body) not in _SERVER_MEMBERS[CURRENT_VERSION]:
        raise ProtocolError(
            f"the inspector request {type(body).__name__} is no longer supported",
            code=ERROR_CODE,
        )
    return body


def encode_to_server(
    body: Any, version: int | None, *, embedded: bool = False, handlers: Handlers = _default
) -> bytes:
    """One inspector-to-server frame (the client side): ``body`` in ``version``;
    ``embedded``: with the version's 2-byte prefix (legacy mode); None: legacy mode in
    version 5. ``EncodeError`` when ``version`` has no such request."""
    version, prefix = _prefix(version, embedded)
    if type(body) not in _SERVER_MEMBERS[version]:
        raise EncodeError(f"inspector protocol v{version} has no request {type(body).__name__}")
    return handlers.to_server[version].encode(_MODULES[version].ToServer(body), prefix)


def decode_to_client(data: bytes, version: int | None, *, handlers: Handlers = _default) -> Any:
    """The body of one server-to-inspector frame (the client side), as version ``version``
    defines it (None: legacy mode, the version read from the prefix)."""
    version, offset = _frame_version(data, version)
    return handlers.to_client[version].decode(bytes(data), offset).body
