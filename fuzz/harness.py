"""Coverage-guided fuzzing of the project's decoders with atheris (``make fuzz``).

Usage: ``python fuzz/harness.py TARGET [libFuzzer options]``, TARGET one of:

* ``bare``: every BARE decoder (``tests/fuzzing.py``: actor-persist, client-protocol and
  envoy-protocol, vbare wrappers and plain codecs) on the pure twin and, when built, the
  compiled twin; the first input byte picks the decoder. Both twins must agree.
* ``compat``: the json / cbor / bare decoders of ``rivetkit.protocol.messages`` and
  ``.http_bodies``;
  the first byte picks the decoder and the encoding.
* ``parsers``: serialized actor keys, the gateway's query and direct forms and input, the
  dispatcher's path and connection-params helpers, the client's endpoint parser.

A decoder may return or raise the project's error for bad input (ProtocolError / RivetError,
ValueError where documented); any other exception is a finding: atheris prints it with the
input and stops. Bound the run with ``-max_total_time=SECONDS`` (``make fuzz`` does, from
``FUZZ_SECONDS``); ``-runs=N`` bounds it by inputs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import atheris  # noqa: E402

with atheris.instrument_imports():
    from rivetkit.client.config import parse_endpoint
    from rivetkit.dispatch import connect, router
    from rivetkit.errors import ProtocolError, RivetError
    from rivetkit.protocol import _bare_py, http_bodies, messages, values
    from rivetkit.protocol.actor_keys import deserialize_key, serialize_key
    from rivetkit.server import gateway

from fuzzing import bare_targets, outcome  # noqa: E402


def _compiled_engine() -> Any:
    try:
        from rivetkit._speedups import _bare
    except ImportError:
        return None
    return _bare


def bare_harness() -> Callable[[bytes], None]:
    pure = bare_targets(_bare_py)
    engine = _compiled_engine()
    compiled = bare_targets(engine) if engine is not None else None

    def one(data: bytes) -> None:
        if not data:
            return
        index = data[0] % len(pure)
        body = data[1:]
        result = outcome(pure[index].decode, body)
        if result[0] == "error":
            assert result[2] == pure[index].error_code, result
        if compiled is not None:
            other = outcome(compiled[index].decode, body)
            assert other == result, (pure[index].name, body.hex(), result, other)

    return one


_COMPAT: list[Callable[[Any, str], Any]] = [
    messages.decode_to_server,
    messages.decode_to_client,
    http_bodies.http_action_request_from,
    http_bodies.http_action_response_from,
    http_bodies.http_error_from,
    http_bodies.http_queue_send_request_from,
    http_bodies.http_queue_send_response_from,
]
_ENCODINGS = ("json", "cbor", "bare")


def compat_harness() -> Callable[[bytes], None]:
    def one(data: bytes) -> None:
        if not data:
            return
        decode = _COMPAT[data[0] % len(_COMPAT)]
        encoding = _ENCODINGS[(data[0] // len(_COMPAT)) % 3]
        body: bytes | str = data[1:]
        if encoding == "json" and data[0] & 0x80:
            body = data[1:].decode("utf-8", "replace")
        try:
            decode(body, encoding)
        except ProtocolError as exc:
            assert exc.group == "protocol", exc
        with contextlib.suppress(ProtocolError):
            values.cbor_loads(data)

    return one


def parsers_harness() -> Callable[[bytes], None]:
    def attempt(call: Callable[[], Any], *errors: type[BaseException]) -> Any:
        try:
            return call()
        except errors:
            return None

    def one(data: bytes) -> None:
        text = data.decode("utf-8", "surrogateescape")
        key = deserialize_key(text)
        assert deserialize_key(serialize_key(key)) == key
        split = attempt(lambda: gateway.split_query(text), RivetError)
        if split is not None:
            attempt(lambda: gateway.parse_query(text, split[0]), RivetError)
        attempt(lambda: gateway.parse_direct(text), RivetError)
        attempt(lambda: gateway.decode_input(text, urlsafe=True, what="input"), RivetError)
        attempt(lambda: router._decode_segment(text), RivetError)
        attempt(lambda: connect.ws_conn_params(text), RivetError)
        attempt(lambda: connect.conn_params_bytes(data), RivetError)
        attempt(lambda: parse_endpoint("http://" + text), ValueError)

    return one


HARNESSES = {"bare": bare_harness, "compat": compat_harness, "parsers": parsers_harness}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in HARNESSES:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(HARNESSES)}}} [libFuzzer options]")
    one = HARNESSES[sys.argv[1]]()
    atheris.Setup([sys.argv[0], *sys.argv[2:]], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
