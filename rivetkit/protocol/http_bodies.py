"""The HTTP bodies of the client protocol (``/action``, ``/queue``, errors), in its encodings.

json and cbor bodies are objects of camelCase fields whose user values are in the JSON-compat
form of :mod:`rivetkit.protocol.values`; bare bodies are the vbare-prefixed records of
:mod:`rivetkit.protocol.client_protocol`. Functions ending in ``_from`` read a body and give
the user's values; those ending in ``_to`` write one as the TypeScript client
(``rivetkit@2.3.19``) or the server does.

As with the connection messages (:mod:`rivetkit.protocol.messages`), the client's cbor request
bodies carry ``args``/``body`` raw, without the JSON-compat layer, so they are read raw (an
inference: no vector shows one with a ``$`` value).

Decoders raise :class:`~rivetkit.errors.ProtocolError` with code ``invalid_http_request`` for
request bodies and ``invalid_http_response`` for response bodies (an unknown encoding
included). Encoders raise :class:`~rivetkit.errors.EncodeError` on values that do not fit, and
``ValueError`` on an unknown encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import cbor2

from rivetkit.protocol.client_protocol import (
    HTTP_ACTION_REQUEST,
    HTTP_ACTION_RESPONSE,
    HTTP_QUEUE_SEND_REQUEST,
    HTTP_QUEUE_SEND_RESPONSE,
    HTTP_REQUEST_ERROR_CODE,
    HTTP_RESPONSE_ERROR,
    HTTP_RESPONSE_ERROR_CODE,
    ActorSpecifier,
    HttpActionRequest,
    HttpActionResponse,
    HttpQueueSendRequest,
    HttpQueueSendResponse,
    HttpResponseError,
)
from rivetkit.protocol.trees import (
    ENCODINGS,
    actor_from_tree,
    actor_tree,
    as_binary,
    check_bool,
    check_encoding,
    check_str,
    check_u64,
    compat_json,
    expect_object,
    json_dumps,
    json_loads,
    json_number,
    plain,
    plain_args,
    read_optional_boolean,
    read_optional_string,
    read_optional_uint,
    read_string,
    unsupported_encoding,
)
from rivetkit.protocol.values import (
    cbor_dumps,
    cbor_dumps_raw,
    cbor_loads,
    cbor_loads_raw,
    decode_json_compat,
    encode_json_compat,
)

__all__ = [
    "http_action_request_from",
    "http_action_request_to",
    "http_action_response_from",
    "http_action_response_to",
    "http_error_from",
    "http_error_to",
    "http_queue_send_request_from",
    "http_queue_send_request_to",
    "http_queue_send_response_from",
    "http_queue_send_response_to",
]


def _http_tree(body: Any, encoding: str, code: str) -> tuple[dict[Any, Any], bool]:
    """The decoded object of a json or cbor body, and whether its values need reviving."""
    if encoding == "json":
        return expect_object(json_loads(body, code), "body", code), True
    return expect_object(
        cbor_loads_raw(as_binary(body, code), error_code=code), "body", code
    ), False


def _args_list(args: Any) -> list[Any]:
    # rivetkit-core accepts a non-array: null (or nothing) means no args, a scalar one arg.
    if args is None:
        return []
    if isinstance(args, list):
        return args
    return [args]


def http_action_request_from(body: bytes | str, encoding: str) -> list[Any]:
    """The args of a ``POST /action/{name}`` body (json args revived, cbor args raw)."""
    code = HTTP_REQUEST_ERROR_CODE
    if encoding == "bare":
        request = HTTP_ACTION_REQUEST.decode(as_binary(body, code))
        return _args_list(cbor_loads(request.args, error_code=code))
    if encoding not in ENCODINGS:
        unsupported_encoding(encoding, code)
    tree, revive = _http_tree(body, encoding, code)
    args = tree.get("args")
    if revive and not plain_args(args):
        args = decode_json_compat(args, error_code=code)
    return _args_list(args)


def http_action_request_to(args: Sequence[Any], encoding: str) -> bytes:
    """A ``POST /action/{name}`` body, as the TypeScript client writes it (cbor args raw)."""
    args = list(args)
    if encoding == "json":
        return json_dumps({"args": encode_json_compat(args)}).encode()
    if encoding == "cbor":
        return cbor_dumps_raw({"args": args})
    check_encoding(encoding)
    return HTTP_ACTION_REQUEST.encode(HttpActionRequest(args=cbor_dumps(args)))


def http_action_response_to(output: Any, encoding: str) -> bytes:
    """The body of a successful action response: ``{"output": ...}`` or ``HttpActionResponse``."""
    if encoding == "json":
        return ('{"output":' + compat_json(output) + "}").encode()
    if encoding == "cbor":
        return _CBOR_OUTPUT_KEY + cbor_dumps_raw(encode_json_compat(output))
    check_encoding(encoding)
    return HTTP_ACTION_RESPONSE.encode(HttpActionResponse(output=cbor_dumps(output)))


# A one-entry map (a1) with the text key "output" (66 + 6 bytes): the head of the cbor form.
_CBOR_OUTPUT_KEY: Final = b"\xa1\x66output"


def http_action_response_from(body: bytes | str, encoding: str) -> Any:
    """The output of a successful action response body (client side)."""
    code = HTTP_RESPONSE_ERROR_CODE
    if encoding == "bare":
        response = HTTP_ACTION_RESPONSE.decode(as_binary(body, code))
        return cbor_loads(response.output, error_code=code)
    if encoding not in ENCODINGS:
        unsupported_encoding(encoding, code)
    tree, _ = _http_tree(body, encoding, code)
    return decode_json_compat(tree.get("output"), error_code=code)


def http_error_to(
    group: str,
    code: str,
    message: str,
    metadata: Any,
    encoding: str,
    *,
    actor: ActorSpecifier | None = None,
) -> bytes:
    """The body of an HTTP error response (spec §3); ``metadata``/``actor`` None are omitted.

    json and cbor give ``{group, code, message, metadata?, actor?}``; bare gives
    ``HttpResponseError`` v4 with its vbare prefix.
    """
    if encoding == "bare":
        meta = None if metadata is None else cbor_dumps(metadata)
        return HTTP_RESPONSE_ERROR.encode(HttpResponseError(group, code, message, meta, actor))
    check_encoding(encoding)
    tree: dict[str, Any] = {
        "group": check_str(group, "group"),
        "code": check_str(code, "code"),
        "message": check_str(message, "message"),
    }
    if metadata is not None:
        tree["metadata"] = encode_json_compat(metadata)
    if encoding == "json":
        if actor is not None:
            tree["actor"] = actor_tree(actor, json_number)
        return json_dumps(tree).encode()
    if actor is not None:
        tree["actor"] = actor_tree(actor, plain)
    return cbor_dumps_raw(tree)


def http_error_from(body: bytes | str, encoding: str) -> HttpResponseError:
    """Read an HTTP error body (client side); ``metadata`` holds the user value."""
    code = HTTP_RESPONSE_ERROR_CODE
    if encoding == "bare":
        error = HTTP_RESPONSE_ERROR.decode(as_binary(body, code))
        if error.metadata is None:
            return error
        return error._replace(metadata=cbor_loads(error.metadata, error_code=code))
    if encoding not in ENCODINGS:
        unsupported_encoding(encoding, code)
    tree, _ = _http_tree(body, encoding, code)
    what = "HttpResponseError"
    return HttpResponseError(
        group=read_string(tree, "group", what, code),
        code=read_string(tree, "code", what, code),
        message=read_string(tree, "message", what, code),
        metadata=decode_json_compat(tree.get("metadata"), error_code=code),
        actor=actor_from_tree(tree.get("actor"), code),
    )


def http_queue_send_request_from(body: bytes | str, encoding: str) -> HttpQueueSendRequest:
    """Read a ``POST /queue/{name}`` body; ``body`` holds the user value (cbor: raw).

    ``timeout`` is in milliseconds. A missing ``body`` is None, as rivetkit-core reads it.
    """
    code = HTTP_REQUEST_ERROR_CODE
    if encoding == "bare":
        request = HTTP_QUEUE_SEND_REQUEST.decode(as_binary(body, code))
        return request._replace(body=cbor_loads(request.body, error_code=code))
    if encoding not in ENCODINGS:
        unsupported_encoding(encoding, code)
    tree, revive = _http_tree(body, encoding, code)
    if not revive:  # cbor-x writes the options the client left out as `undefined`
        tree = {k: None if v is cbor2.undefined else v for k, v in tree.items()}
    what = "HttpQueueSendRequest"
    value = tree.get("body")
    return HttpQueueSendRequest(
        body=decode_json_compat(value, error_code=code) if revive else value,
        name=read_optional_string(tree, "name", what, code),
        wait=read_optional_boolean(tree, "wait", what, code),
        timeout=read_optional_uint(tree, "timeout", what, code, allow_float=True),
    )


def http_queue_send_request_to(request: HttpQueueSendRequest, encoding: str) -> bytes:
    """A ``POST /queue/{name}`` body, as the TypeScript client writes it (cbor body raw)."""
    if encoding == "bare":
        return HTTP_QUEUE_SEND_REQUEST.encode(request._replace(body=cbor_dumps(request.body)))
    check_encoding(encoding)
    json_form = encoding == "json"
    tree: dict[str, Any] = {"body": encode_json_compat(request.body) if json_form else request.body}
    if request.wait is not None:
        tree["wait"] = check_bool(request.wait, "wait")
    if request.timeout is not None:
        timeout = check_u64(request.timeout, "timeout")
        tree["timeout"] = json_number(timeout) if json_form else timeout
    if request.name is not None:
        tree["name"] = check_str(request.name, "name")
    return json_dumps(tree).encode() if json_form else cbor_dumps_raw(tree)


def http_queue_send_response_to(status: str, response: Any, encoding: str) -> bytes:
    """The answer to a queue send: ``{"status", "response"?}``; a None response is omitted."""
    if encoding == "bare":
        payload = None if response is None else cbor_dumps(response)
        return HTTP_QUEUE_SEND_RESPONSE.encode(HttpQueueSendResponse(status, payload))
    check_encoding(encoding)
    tree: dict[str, Any] = {"status": check_str(status, "status")}
    if response is not None:
        tree["response"] = encode_json_compat(response)
    return json_dumps(tree).encode() if encoding == "json" else cbor_dumps_raw(tree)


def http_queue_send_response_from(body: bytes | str, encoding: str) -> HttpQueueSendResponse:
    """Read the answer to a queue send (client side); ``response`` holds the user value."""
    code = HTTP_RESPONSE_ERROR_CODE
    if encoding == "bare":
        response = HTTP_QUEUE_SEND_RESPONSE.decode(as_binary(body, code))
        if response.response is None:
            return response
        return response._replace(response=cbor_loads(response.response, error_code=code))
    if encoding not in ENCODINGS:
        unsupported_encoding(encoding, code)
    tree, _ = _http_tree(body, encoding, code)
    return HttpQueueSendResponse(
        status=read_string(tree, "status", "HttpQueueSendResponse", code),
        response=decode_json_compat(tree.get("response"), error_code=code),
    )
