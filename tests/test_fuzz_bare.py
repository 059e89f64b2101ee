"""Fuzzing every BARE decoder, on both twins: arbitrary and mutated bytes either decode or raise
the decoder's ProtocolError (never IndexError, struct.error, RecursionError, MemoryError...),
and the compiled and pure twins give the same answer.

Targets (see ``tests/fuzzing.py``): actor-persist v1-v4 and client-protocol v1-v4 through their
vbare handlers and through each version's plain codec, envoy-protocol v8 both directions.
``RIVETKIT_FUZZ_EXAMPLES`` sets the examples per test (default 60).
"""

from __future__ import annotations

from types import ModuleType

import pytest
from fuzzing import FUZZ, Target, bare_targets, mutated, outcome
from hypothesis import given
from hypothesis import strategies as st

from conftest import compiled_twin
from rivetkit import _twins
from rivetkit.protocol import _bare_py


def _compiled() -> ModuleType | None:
    module = compiled_twin()
    if module is None and _twins.SPEEDUPS_REQUIRED:
        pytest.fail("RIVETKIT_REQUIRE_SPEEDUPS=1 but the compiled twin is not built")
    return module


PURE = {t.name: t for t in bare_targets(_bare_py)}
_cy = compiled_twin()
COMPILED = {t.name: t for t in bare_targets(_cy)} if _cy is not None else {}
NAMES = sorted(PURE)


def _pair(name: str) -> tuple[Target, Target | None]:
    _compiled()
    return PURE[name], COMPILED.get(name)


def _check(pure: Target, compiled: Target | None, data: bytes) -> None:
    result = outcome(pure.decode, data)
    if result[0] == "error":
        assert result[1:] == ("protocol", pure.error_code), result
    elif pure.encode is not None:
        # Strict decoding: an accepted input is the canonical encoding of its value (floats
        # aside: a NaN's payload need not survive the float32 -> float64 round trip).
        value = pure.decode(data)
        again = pure.encode(value)
        assert again == data or "nan" in result[1], (data.hex(), again.hex())
    if compiled is not None:
        assert outcome(compiled.decode, data) == result, data.hex()


def test_every_decoder_is_covered() -> None:
    groups = {name.split(".")[0] for name in NAMES}
    assert groups == {"actor_persist", "client_protocol", "envoy_protocol"}
    versions = {v for t in PURE.values() for v in t.versions}
    assert versions == {1, 2, 3, 4}
    assert len(NAMES) >= 25


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_garbage(name: str, data: st.DataObject) -> None:
    pure, compiled = _pair(name)
    if pure.versions:  # a known (or unknown) version prefix, then anything
        version = data.draw(st.sampled_from([*pure.versions, 0, 5, 0xFFFF]))
        raw = version.to_bytes(2, "little") + data.draw(st.binary(max_size=96))
    else:
        raw = data.draw(st.binary(max_size=128))
    _check(pure, compiled, raw)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_mutated(name: str, data: st.DataObject) -> None:
    pure, compiled = _pair(name)
    raw = data.draw(mutated(pure.seeds, keep=2 if pure.versions else 0))
    _check(pure, compiled, raw)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_valid_inputs_agree(name: str, data: st.DataObject) -> None:
    pure, compiled = _pair(name)
    raw = data.draw(pure.seeds)
    result = outcome(pure.decode, raw)
    assert result[0] == "ok", result
    _check(pure, compiled, raw)


@pytest.mark.parametrize("name", NAMES)
def test_adversarial_shapes(name: str) -> None:
    """Hand-picked shapes: huge counts and lengths, deep varints, every prefix."""
    pure, compiled = _pair(name)
    prefixes = [v.to_bytes(2, "little") for v in pure.versions] or [b""]
    bodies = [
        b"",
        b"\x00" * 64,
        b"\xff" * 64,
        b"\x80" * 11,
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01" * 4,
        b"\xff\xff\xff\xff\x0f" + b"\x00" * 16,
        b"\x01" * 256,
        bytes(range(256)),
    ]
    for prefix in prefixes:
        for body in bodies:
            for cut in (len(body), len(body) // 2, 1):
                _check(pure, compiled, prefix + body[:cut])
    for size in (0, 1):
        _check(pure, compiled, b"\x04"[:size])
