"""The former home of the json/cbor client protocol, kept as an import path.

Its contents now live in rooms of their own, and new code imports from there:

* :mod:`rivetkit.protocol.values`: the JSON-compat layer and the CBOR of user values
  (``cbor_dumps``/``cbor_loads``, ``MAX_DEPTH``);
* :mod:`rivetkit.protocol.trees`: the encodings (``Encoding``, ``ENCODINGS``) and the helpers
  the json and cbor trees share;
* :mod:`rivetkit.protocol.messages`: the connection messages in every encoding;
* :mod:`rivetkit.protocol.http_bodies`: the HTTP bodies in every encoding.

This module re-exports their public names under the old path, for the scripts outside the
package (``fuzz/``, ``benchmarks/``) and the code still importing it.
"""

from __future__ import annotations

from rivetkit.protocol.http_bodies import (
    http_action_request_from,
    http_action_request_to,
    http_action_response_from,
    http_action_response_to,
    http_error_from,
    http_error_to,
    http_queue_send_request_from,
    http_queue_send_request_to,
    http_queue_send_response_from,
    http_queue_send_response_to,
)
from rivetkit.protocol.messages import (
    action_request_from,
    action_response_cbor,
    action_response_json,
    decode_to_client,
    decode_to_server,
    encode_action_response,
    encode_to_client,
    encode_to_server,
    event_json,
    to_client_cbor,
    to_client_from_cbor,
    to_client_from_json,
    to_client_json,
    to_server_cbor,
    to_server_from_cbor,
    to_server_from_json,
    to_server_json,
)
from rivetkit.protocol.trees import ENCODINGS, Encoding
from rivetkit.protocol.values import (
    MAX_DEPTH,
    MAX_SAFE_INTEGER,
    cbor_dumps,
    cbor_dumps_raw,
    cbor_loads,
    cbor_loads_raw,
    decode_json_compat,
    encode_json_compat,
)

__all__ = [
    "ENCODINGS",
    "MAX_DEPTH",
    "MAX_SAFE_INTEGER",
    "Encoding",
    "action_request_from",
    "action_response_cbor",
    "action_response_json",
    "cbor_dumps",
    "cbor_dumps_raw",
    "cbor_loads",
    "cbor_loads_raw",
    "decode_json_compat",
    "decode_to_client",
    "decode_to_server",
    "encode_action_response",
    "encode_json_compat",
    "encode_to_client",
    "encode_to_server",
    "event_json",
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
    "to_client_cbor",
    "to_client_from_cbor",
    "to_client_from_json",
    "to_client_json",
    "to_server_cbor",
    "to_server_from_cbor",
    "to_server_from_json",
    "to_server_json",
]
