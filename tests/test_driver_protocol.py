"""The :class:`~rivetkit.drivers.base.Driver` protocol is complete: both drivers implement
every member with the protocol's parameters, the runtime implements every
:class:`~rivetkit.drivers.base.ActorHost` member, and no module of the package probes a driver
or a host (``getattr``/``hasattr`` on it, ``isinstance`` against a concrete class): callers
use the declared members.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from rivetkit.drivers.base import ActorHost, Driver
from rivetkit.drivers.embedded import EmbeddedDriver
from rivetkit.drivers.engine import EngineDriver
from rivetkit.runtime.live_actors import Runtime

PACKAGE = Path(__file__).resolve().parent.parent / "rivetkit"


def _members(protocol: type) -> dict[str, Any]:
    skip = {"__init__", "__subclasshook__", "__class_getitem__"}
    return {
        name: value
        for name, value in vars(protocol).items()
        if not name.startswith("_") and name not in skip
    }


def _parameters(fn: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize(
    ("protocol", "implementation"),
    [(Driver, EmbeddedDriver), (Driver, EngineDriver), (ActorHost, Runtime)],
    ids=["embedded", "engine", "runtime-host"],
)
def test_every_member_is_implemented(protocol: type, implementation: type) -> None:
    members = _members(protocol)
    for name, declared in members.items():
        assert hasattr(implementation, name), f"{implementation.__name__} lacks {name}"
        actual = inspect.getattr_static(implementation, name)
        if isinstance(declared, property):
            assert isinstance(actual, property), f"{implementation.__name__}.{name}"
            continue
        assert inspect.iscoroutinefunction(actual) == inspect.iscoroutinefunction(declared), name
        assert _parameters(actual) == _parameters(declared), f"{implementation.__name__}.{name}"


def test_the_capabilities_callers_use_are_declared() -> None:
    assert {"kind", "pool_name", "sql_backend", "on_destroyed"} <= set(_members(Driver))
    assert "actor_names" in _members(ActorHost)


def test_driver_kinds(tmp_path: Path) -> None:
    embedded = EmbeddedDriver(tmp_path)
    assert (embedded.kind, embedded.pool_name) == ("embedded", "")
    engine = EngineDriver("http://127.0.0.1:9", pool="p")
    assert (engine.kind, engine.pool_name) == ("engine", "p")


# A probe: getattr/hasattr on something named driver or host, or an isinstance check against
# a concrete driver or the runtime.
_PROBE = re.compile(
    r"(?:getattr|hasattr)\(\s*[\w.]*(?:driver|host)\b"
    r"|isinstance\([^)]*,\s*\(?\s*(?:EmbeddedDriver|EngineDriver|Runtime)\b"
)


def test_no_module_probes_a_driver() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _PROBE.search(line)
    ]
    assert found == []


@pytest.mark.parametrize(
    "line",
    [
        'on_destroyed = getattr(self.driver, "on_destroyed", None)',
        'kind = "engine" if hasattr(driver, "envoy_key") else "embedded"',
        'registry = getattr(host, "registry", None)',
        "if isinstance(host, Runtime):",
    ],
)
def test_the_probe_pattern_finds_probes(line: str) -> None:
    assert _PROBE.search(line)
