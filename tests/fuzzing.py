"""Shared pieces of the fuzz tests (``tests/test_fuzz_*.py``) and the atheris harnesses (``fuzz/``).

* :func:`bare_targets` lists every BARE decoder of the project (actor-persist, client-protocol,
  envoy-protocol, the vbare wrappers and each version's plain codec) built over one codec
  engine twin, as :class:`Target` records;
* :func:`outcome` runs a decoder and reduces its result to something comparable across twins:
  ``("ok", repr(value))`` or ``("error", group, code)``. Any exception other than
  :class:`~rivetkit.errors.ProtocolError` propagates, which is the failure the fuzzers look for;
* :func:`mutated` is a hypothesis strategy applying a few byte mutations to valid encodings.

The number of hypothesis examples per fuzz test is ``RIVETKIT_FUZZ_EXAMPLES`` (default 60):
set it higher for a longer run by hand.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from strategies import strategy_for_plan

from rivetkit.errors import ProtocolError
from rivetkit.protocol import actor_persist, client_protocol
from rivetkit.protocol.envoy_protocol import ERROR_CODE as ENVOY_ERROR_CODE
from rivetkit.protocol.envoy_protocol import v8
from rivetkit.protocol.schema import plan_of

__all__ = [
    "EXAMPLES",
    "FUZZ",
    "Target",
    "bare_targets",
    "mutated",
    "outcome",
]

#: Hypothesis examples per fuzz test (``RIVETKIT_FUZZ_EXAMPLES``).
EXAMPLES = int(os.environ.get("RIVETKIT_FUZZ_EXAMPLES", "60"))

#: Settings of every fuzz test: no deadline (the machine is shared), no slowness checks.
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)


@dataclass(frozen=True)
class Target:
    """One decoder: ``decode(bytes)``, its error code, and valid inputs to mutate.

    ``encode`` is set for plain codecs (not vbare wrappers, which upgrade old versions): a
    value they decode must encode back to the same bytes (strict, canonical decoding).
    """

    name: str
    decode: Callable[[bytes], Any]
    error_code: str
    seeds: st.SearchStrategy[bytes]
    versions: tuple[int, ...] = ()
    encode: Callable[[Any], bytes] | None = None


def _codec_seeds(codec: Any, prefix: bytes = b"") -> st.SearchStrategy[bytes]:
    return strategy_for_plan(codec.plan, max_items=2, max_bytes=12).map(
        lambda value: codec.encode(value, prefix)
    )


def _versioned_targets(group: str, handlers: Any) -> list[Target]:
    targets = []
    for field, handler in handlers._asdict().items():
        versions = tuple(sorted(handler.readers))
        seeds = st.one_of(
            *(
                _codec_seeds(handler.readers[v], v.to_bytes(2, "little"))
                for v in versions
                if hasattr(handler.readers[v], "plan")
            )
        )
        targets.append(
            Target(f"{group}.{field}", handler.decode, handler.error_code, seeds, versions)
        )
        seen: set[int] = set()
        for version in versions:
            codec = handler.readers[version]
            if id(codec) in seen or not hasattr(codec, "plan"):
                continue  # versions whose bytes did not change share one codec
            seen.add(id(codec))
            targets.append(
                Target(
                    f"{group}.{field}@v{version}",
                    codec.decode,
                    handler.error_code,
                    _codec_seeds(codec),
                    encode=codec.encode,
                )
            )
    return targets


def bare_targets(engine: ModuleType) -> list[Target]:
    """Every BARE decoder of the project, built over the codec engine twin ``engine``."""
    targets = _versioned_targets("actor_persist", actor_persist.build(engine))
    targets += _versioned_targets("client_protocol", client_protocol.build(engine))
    for name, tp in (("to_rivet", v8.ToRivet), ("to_envoy", v8.ToEnvoy)):
        codec = engine.compile_plan(plan_of(tp), ENVOY_ERROR_CODE)
        targets.append(
            Target(
                f"envoy_protocol.{name}",
                codec.decode,
                ENVOY_ERROR_CODE,
                _codec_seeds(codec),
                encode=codec.encode,
            )
        )
    return targets


def outcome(decode: Callable[[Any], Any], data: Any) -> tuple[Any, ...]:
    """``("ok", repr(value))`` or ``("error", group, code)``; other exceptions propagate."""
    try:
        value = decode(data)
    except ProtocolError as exc:
        return ("error", exc.group, exc.code)
    return ("ok", repr(value))


_OPS = ("flip", "set", "insert", "delete", "truncate", "duplicate", "extend")


@st.composite
def mutated(draw: st.DrawFn, seeds: st.SearchStrategy[bytes], keep: int = 0) -> bytes:
    """A valid encoding from ``seeds`` with up to four byte mutations (the first ``keep``
    bytes, e.g. a version prefix, left alone)."""
    raw = bytearray(draw(seeds))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(_OPS))
        size = len(raw)
        if size <= keep and op not in ("insert", "extend"):
            op = "insert"
        pos = draw(st.integers(min_value=keep, max_value=max(keep, size - 1)))
        if op == "flip":
            raw[pos] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif op == "set":
            raw[pos] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, 0x02, 0x10]))
        elif op == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del raw[pos : pos + draw(st.integers(min_value=1, max_value=4))]
        elif op == "truncate":
            del raw[pos:]
        elif op == "duplicate":
            end = draw(st.integers(min_value=pos, max_value=size))
            raw[end:end] = raw[pos:end]
        else:
            raw += draw(st.binary(min_size=1, max_size=16))
    return bytes(raw)
