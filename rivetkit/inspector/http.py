"""The inspector's HTTP routes (runtime spec §5), under ``/inspector`` of an actor.

Every route but the UI-asset ones needs the actor's bearer token
(:mod:`rivetkit.inspector.token`); without it: 401 ``inspector.unauthorized``. JSON answers
carry ``Content-Type: application/json`` and ``Referrer-Policy: no-referrer``.

=================================== ======== ==================================================
path                                method   answer
=================================== ======== ==================================================
``/inspector/state``                GET      ``{state, isStateEnabled}``
``/inspector/state``                PATCH    ``{state}`` in, ``{ok: true}`` out (saved at once)
``/inspector/connections``          GET      ``{connections: [...]}``
``/inspector/rpcs``                 GET      ``{rpcs: [names]}``
``/inspector/action/{name}``        POST     ``{args}`` or ``{properties}`` in, ``{output}``
``/inspector/queue?limit=100``      GET      ``{size, maxSize, truncated, messages}``
``/inspector/queue``                POST     ``{name, body?}`` in, ``{id, name, createdAtMs}``
``/inspector/queue``                DELETE   ``{}`` (every message removed)
``/inspector/schedules``            GET      ``{schedules: [...]}`` (with ``lastRunAt``)
``/inspector/schedules/history``    GET      ``?id=&limit=20``: ``{history: [runs, newest first]}``
``/inspector/workflow-history``     GET      ``{history, workflowState, isWorkflowEnabled}``
``/inspector/workflow/replay``      POST     ``{entryId?}`` in, the same out (:mod:`.workflow`)
``/inspector/traces``               GET      ``?startMs=&endMs=&limit=``: ``{otlp, clamped}``
``/inspector/database/schema``      GET      ``{schema: {tables: [...]}}``
``/inspector/database/rows``        GET      ``?table=&limit=100&offset=0``: ``{rows}``
``/inspector/database/execute``     POST     ``{sql, args?, properties?}`` in, ``{rows}``
``/inspector/summary``              GET      state, connections, rpcs, queue size, flags
``/inspector/tab-config``           GET      ``{tabs: []}`` (no auth)
``/inspector/ui/``, ``/tab.css``    GET      the dashboard's inspector page (no auth; :mod:`.ui`)
anything else                                404 ``actor.not_found``
=================================== ======== ==================================================

Errors are ``{group, code, message, metadata}`` with the inspector's status mapping:
``*.unauthorized`` 401, ``inspector.forbidden_statement`` 403 (a statement the SQL sandbox
refuses, :mod:`rivetkit.inspector.sandbox`), ``actor.action_timed_out`` 408,
``actor.workflow_in_flight`` 409, ``*.action_not_found`` 404, ``*.invalid_request``,
``*.state_not_enabled`` and ``database.not_enabled`` 400, else 500. An action's own failure
is 404 (``action_not_found``) or 500. Internal errors hide their message
(``RIVET_EXPOSE_ERRORS=1`` shows it), as everywhere.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Final

from rivetkit.dispatch.http import Request, Response
from rivetkit.errors import RivetError, expose_errors, is_public
from rivetkit.inspector import snapshot, ui, workflow
from rivetkit.inspector.token import actor_token, bearer_token, token_matches, unauthorized
from rivetkit.protocol.actor_persist import QUEUE_MESSAGE
from rivetkit.runtime.instance import Phase
from rivetkit.traces import query as trace_query

if TYPE_CHECKING:
    from rivetkit.dispatch.router import Dispatcher
    from rivetkit.runtime.instance import ActorInstance

__all__ = [
    "MAX_BODY",
    "error_json",
    "error_parts",
    "handle_http",
    "inspector_status",
    "patch_state",
]

logger = logging.getLogger("rivetkit.inspector")

#: Largest request body the inspector reads.
MAX_BODY: Final = 4 * 1024 * 1024

_JSON_HEADERS: Final = [
    (b"content-type", b"application/json"),
    (b"referrer-policy", b"no-referrer"),
]
# Groups whose messages an authorized inspector sees even when not public elsewhere.
_VISIBLE_GROUPS: Final = frozenset(
    {"inspector", "database", "sqlite", "queue", "schedule", "user", "actor"}
)


def inspector_status(group: str, code: str) -> int:
    """The HTTP status of an inspector error (runtime spec §5)."""
    if code == "unauthorized":
        return 401
    if (group, code) == ("inspector", "forbidden_statement"):
        return 403
    if (group, code) == ("actor", "action_timed_out"):
        return 408
    if (group, code) == ("actor", "workflow_in_flight"):
        return workflow.IN_FLIGHT_STATUS
    if code == "action_not_found" or (group, code) == ("actor", "not_found"):
        return 404
    if code in ("invalid_request", "state_not_enabled") or (group, code) == (
        "database",
        "not_enabled",
    ):
        return 400
    return 500


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _json(data: Any, status: int = 200) -> Response:
    return Response._raw(status, list(_JSON_HEADERS), _dumps(data))


def error_parts(error: BaseException) -> tuple[str, str, str]:
    """``(group, code, message)`` of an error as the inspector shows it."""
    if isinstance(error, RivetError):
        if is_public(error.group, error.code) or error.group in _VISIBLE_GROUPS or expose_errors():
            return error.group, error.code, error.message
        return error.group, error.code, "An internal error occurred"
    if expose_errors():
        return "core", "internal_error", f"{type(error).__name__}: {error}"
    return "core", "internal_error", "An internal error occurred"


def error_json(error: BaseException, status: int | None = None) -> Response:
    """The JSON RivetError response of ``error`` (status from :func:`inspector_status`)."""
    group, code, message = error_parts(error)
    if not isinstance(error, RivetError):
        logger.error("inspector request failed", exc_info=error)
    metadata = None
    if isinstance(error, RivetError) and (group, code) == ("inspector", "forbidden_statement"):
        metadata = error.metadata
    body = {"group": group, "code": code, "message": message, "metadata": metadata}
    return _json(body, inspector_status(group, code) if status is None else status)


def _route_not_found() -> RivetError:
    return RivetError("actor", "not_found", "Inspector route was not found")


def _bad_body(reason: str) -> RivetError:
    return RivetError("actor", "invalid_request", f"Invalid inspector JSON body: {reason}")


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.read(MAX_BODY)
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise _bad_body(str(exc)[:200]) from None
    if not isinstance(data, dict):
        raise _bad_body("expected a JSON object")
    return data


def _query_int(request: Request, name: str, default: int) -> int:
    values = request.query.get(name)
    if not values:
        return default
    text = values[0]
    if not text.isdigit() or len(text) > 10 or int(text) > 0xFFFFFFFF:
        raise RivetError(
            "actor", "invalid_request", f"Invalid query parameter `{name}`: {text[:40]!r}"
        )
    return int(text)


def _public_routes(path: str, method: str) -> Response | None:
    """The routes served without a token: the (absent) UI bundle and custom tabs."""
    if method != "GET":
        return None
    if path == "/inspector/tab-config":
        return _json({"tabs": []})
    if path.startswith("/inspector/ui") or path == "/inspector/tab.css":
        found = ui.asset(path)
        if found is not None:
            headers = [(b"content-type", found[0].encode()), (b"cache-control", b"no-cache")]
            return Response._raw(200, headers, found[1])
        return error_json(
            RivetError("inspector", "ui_asset_not_found", f"No inspector UI asset at {path[:200]}"),
            404,
        )
    if path.startswith("/inspector/custom-tabs/"):
        return error_json(
            RivetError(
                "inspector",
                "custom_tab_not_found",
                "Inspector custom tab id was not registered on this actor",
            ),
            404,
        )
    return None


async def handle_http(dispatcher: Dispatcher, actor_id: str, request: Request) -> Response:
    """Answer an ``/inspector/*`` request for the actor ``actor_id``."""
    path = request.path
    method = request.method
    public = _public_routes(path, method)
    if public is not None:
        return public
    try:
        instance = await dispatcher._instance(actor_id)
    except Exception as exc:
        return error_json(
            exc, 404 if isinstance(exc, RivetError) and exc.code == "not_found" else None
        )
    instance.begin_request()
    try:
        presented = bearer_token(request.headers.get("authorization"))
        if not token_matches(presented, await actor_token(instance)):
            raise unauthorized()
        response = await _route(instance, request, path, method)
    except Exception as exc:
        response = error_json(exc)
    finally:
        instance.end_request()
    response.headers.raw.extend(dispatcher.headers_of(instance))
    return response


async def _route(instance: ActorInstance, request: Request, path: str, method: str) -> Response:
    route = (method, path)
    if route == ("GET", "/inspector/state"):
        return _json(
            {
                "state": snapshot.state_value(instance),
                "isStateEnabled": snapshot.state_enabled(instance),
            }
        )
    if route == ("PATCH", "/inspector/state"):
        body = await _json_body(request)
        await patch_state(instance, body.get("state"))
        return _json({"ok": True})
    if route == ("GET", "/inspector/connections"):
        return _json({"connections": snapshot.connections(instance)})
    if route == ("GET", "/inspector/rpcs"):
        return _json({"rpcs": snapshot.rpcs(instance)})
    if method == "POST" and path.startswith("/inspector/action/"):
        name = path[len("/inspector/action/") :]
        if not name or "/" in name:
            raise _route_not_found()
        return await _action(instance, request, name)
    if path == "/inspector/queue":
        if method == "GET":
            limit = _query_int(request, "limit", snapshot.DEFAULT_LIMIT)
            return _json((await snapshot.queue_view(instance, limit)).to_json())
        if method == "POST":
            return _json(await _queue_send(instance, await _json_body(request)))
        if method == "DELETE":
            await instance.queue.reset()
            return _json({})
    if route == ("GET", "/inspector/schedules"):
        return _json({"schedules": _schedules(instance)})
    if route == ("GET", "/inspector/schedules/history"):
        ids = request.query.get("id")
        if not ids:
            raise RivetError("actor", "invalid_request", "Missing required query parameter `id`")
        limit = _query_int(request, "limit", 20)
        return _json({"history": await snapshot.schedule_history(instance, ids[0], limit)})
    flow = await workflow.route(instance, method, path, lambda: _json_body(request))
    if flow is not None:
        return _json(flow)
    if route == ("GET", "/inspector/traces"):
        return _json(await trace_query.http_query(instance, request.query))
    if route == ("GET", "/inspector/database/schema"):
        return _json({"schema": snapshot.jsonable(await snapshot.database_schema(instance))})
    if route == ("GET", "/inspector/database/rows"):
        tables = request.query.get("table")
        if not tables:
            raise RivetError("actor", "invalid_request", "Missing required query parameter `table`")
        limit = _query_int(request, "limit", snapshot.DEFAULT_LIMIT)
        offset = _query_int(request, "offset", 0)
        rows = await snapshot.database_rows(instance, tables[0], limit, offset)
        return _json({"rows": snapshot.jsonable(rows)})
    if route == ("POST", "/inspector/database/execute"):
        body = await _json_body(request)
        rows = await snapshot.database_execute(
            instance, body.get("sql"), body.get("args"), body.get("properties")
        )
        return _json({"rows": snapshot.jsonable(rows)})
    if route == ("GET", "/inspector/summary"):
        return _json(await snapshot.summary(instance))
    raise _route_not_found()


def _schedules(instance: ActorInstance) -> list[dict[str, Any]]:
    """The schedules' JSON; a recurring one carries its latest run's start (``lastRunAt``)
    and its ``maxHistory``, as the WebSocket's ``Schedule`` does."""
    out = []
    for view in snapshot.schedules(instance):
        data = view.to_json()
        record = None if view.name is None else instance.schedule.recurring(view.name)
        if view.kind != "at" and record is not None:
            started = record.last_started_at
            data["lastRunAt"] = None if started is None else int(started * 1000)
            data["maxHistory"] = record.max_history
        out.append(data)
    return out


async def patch_state(instance: ActorInstance, value: Any) -> None:
    """Replace the actor's state with ``value`` and save it now."""
    if not snapshot.state_enabled(instance):
        raise RivetError("actor", "state_not_enabled", "This actor has no state")
    if instance.phase != Phase.STARTED:
        raise RivetError("actor", "stopping", "the actor is stopping")
    instance.set_state(value)
    await instance.save_state(immediate=True)


async def _action(instance: ActorInstance, request: Request, name: str) -> Response:
    body = await _json_body(request)
    args = body.get("args")
    properties = body.get("properties")
    if args is not None and properties is not None:
        return _json({"error": "use either args or properties, not both"}, 400)
    if properties is not None:
        if not isinstance(properties, dict):
            return _json({"error": "properties must be an object"}, 400)
        args = [properties]
    if args is None:
        args = []
    if not isinstance(args, list):
        return _json({"error": "args must be an array"}, 400)
    try:
        output = await snapshot.run_action(instance, name, args)
    except Exception as exc:
        not_found = isinstance(exc, RivetError) and exc.code == "action_not_found"
        return error_json(exc, 404 if not_found else 500)
    return _json({"output": snapshot.jsonable(output)})


async def _queue_send(instance: ActorInstance, body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise snapshot.invalid_request("name", "must be a non-empty string")
    queue = instance.queue
    # The queue's own send path (checks, size limits, durability), keeping the new id.
    encoded = queue._encode(name, body.get("body"))
    ident, _ = await queue._append(name, encoded, False)
    created = int(QUEUE_MESSAGE.decode(encoded).created_at)
    return {"id": str(ident), "name": name, "createdAtMs": created}
