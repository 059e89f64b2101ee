"""Check golden vectors made by RivetKit's own codecs against ours.

Usage: ``python -m rivetkit.protocol.vectors check FILE...``

Each file is in the ``rivetkit-vectors/1`` format (see ``tests/vectors/README.md``). Every
case is decoded and re-encoded with each available codec twin (the compiled one unless
``RIVETKIT_PURE=1``, and the pure one); one line is printed per failing case, then
``N passed, M failed``. The exit status is 1 when any case failed.

The value conventions of the files (camelCase keys, ``{"$hex": ...}`` bytes, unions as
``{"tag", "val"}``, PascalCase enum names) are converted from and to our records here, driven
by the records' codec plans.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from rivetkit import _twins
from rivetkit.protocol import (
    _bare_py,
    actor_persist,
    client_protocol,
    envoy_protocol,
    inspector_protocol,
    messages,
)
from rivetkit.protocol import plan as P
from rivetkit.protocol.schema import is_list_alias, plan_of, wire_name

FORMAT = "rivetkit-vectors/1"


# -------------------------------------------------------------------------------------------
# Value conventions


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _is_alias(cls: type, fields: tuple[tuple[str, P.Node], ...]) -> bool:
    """A one-field record standing for a list alias (e.g. ``ToRivetEvents``)."""
    return is_list_alias(cls) and len(fields) == 1


def to_vector(value: Any, node: P.Node, *, in_union: bool = False) -> Any:
    """Convert one of our values into the vectors' JSON convention."""
    kind, a, b = node
    if kind in (P.DATA, P.FIXED):
        if isinstance(value, (bytes, bytearray)):
            return {"$hex": bytes(value).hex()}
        return value  # a json/cbor-form payload holding the user value itself
    if kind == P.OPTIONAL:
        return None if value is None else to_vector(value, a)
    if kind == P.LIST:
        return [to_vector(item, a) for item in value]
    if kind == P.MAP:
        return {k: to_vector(v, b) for k, v in value.items()}
    if kind == P.ENUM:
        return _pascal(value.name)
    if kind == P.UNION:
        for member_cls, member_node in a:
            if type(value) is member_cls:
                return {
                    "tag": member_cls.__name__,
                    "val": to_vector(value, member_node, in_union=True),
                }
        raise TypeError(f"{type(value).__name__} is not a member of the union")
    if kind == P.STRUCT:
        if in_union and not b:
            return None
        if _is_alias(a, b):
            return to_vector(value[0], b[0][1])
        return {wire_name(name): to_vector(field, fnode) for (name, fnode), field in zip(b, value)}
    if kind == P.VOID:
        return None
    return value


def from_vector(data: Any, node: P.Node, *, raw_payloads: bool = False) -> Any:
    """Build one of our values from the vectors' JSON convention.

    With ``raw_payloads`` (json/cbor cases) a ``data`` field holds the user value itself.
    """
    kind, a, b = node
    if kind in (P.DATA, P.FIXED):
        if raw_payloads and not (isinstance(data, dict) and set(data) == {"$hex"}):
            return data
        return bytes.fromhex(data["$hex"])
    if kind == P.OPTIONAL:
        return None if data is None else from_vector(data, a, raw_payloads=raw_payloads)
    if kind == P.LIST:
        return [from_vector(item, a, raw_payloads=raw_payloads) for item in data]
    if kind == P.MAP:
        return {k: from_vector(v, b, raw_payloads=raw_payloads) for k, v in data.items()}
    if kind == P.ENUM:
        for member in a:
            if _pascal(member.name) == data:
                return member
        raise ValueError(f"unknown {a.__name__} member {data!r}")
    if kind == P.UNION:
        for member_cls, member_node in a:
            if member_cls.__name__ == data["tag"]:
                return from_vector(data["val"], member_node, raw_payloads=raw_payloads)
        raise ValueError(f"unknown union tag {data['tag']!r}")
    if kind == P.STRUCT:
        if not b:
            return a()
        if _is_alias(a, b):
            return a(from_vector(data, b[0][1], raw_payloads=raw_payloads))
        return a(
            *(
                from_vector(data[wire_name(name)], fnode, raw_payloads=raw_payloads)
                for name, fnode in b
            )
        )
    if kind == P.F32 or kind == P.F64:
        return float(data)
    return data


def _same(left: Any, right: Any) -> bool:
    """Equality that tells ``1`` from ``True`` and ``1.0`` (JSON values are compared)."""
    if type(left) is not type(right) and not (
        isinstance(left, (int, float))
        and isinstance(right, (int, float))
        and not isinstance(left, bool)
        and not isinstance(right, bool)
    ):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(_same(x, y) for x, y in zip(left, right))
    return bool(left == right)


# -------------------------------------------------------------------------------------------
# Checking one case


class CaseFailure(Exception):
    """A vector case that did not hold."""


def _snake(type_name: str) -> str:
    out = []
    for i, ch in enumerate(type_name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class Checker:
    """Checks cases with the codecs of one twin."""

    def __init__(self, twin: str, engine: ModuleType) -> None:
        self.twin = twin
        self.persist = actor_persist.build(engine)
        self.client = client_protocol.build(engine)
        self.inspector = inspector_protocol.build(engine)
        self.envoy = {
            name: engine.compile_plan(plan_of(tp), envoy_protocol.ERROR_CODE)
            for name, tp in (
                ("ToRivet", envoy_protocol.ToRivet),
                ("ToEnvoy", envoy_protocol.ToEnvoy),
            )
        }

    def check(self, case: dict[str, Any]) -> None:
        """Raise CaseFailure unless ``case`` holds."""
        schema, type_name, encoding = case["schema"], case["type"], case["encoding"]
        if encoding == "bare":
            self._check_bare(case, schema, type_name)
        elif schema == "client-protocol" and encoding in ("json", "cbor"):
            self._check_compat(case, type_name, encoding)
        else:
            raise CaseFailure(f"unsupported schema/encoding {schema}/{encoding}")

    def _bare_codec(
        self, schema: str, type_name: str, version: int | None = None
    ) -> tuple[Any, P.Node]:
        if schema == "envoy-protocol":
            codec = self.envoy[type_name]
            return codec, codec.plan
        if schema == "inspector-protocol":
            # A frame of ``version`` (default: the latest), as sent with ?protocol_version.
            tables = {"ToServer": self.inspector.to_server, "ToClient": self.inspector.to_client}
            table = tables.get(type_name, {})
            codec = table.get(inspector_protocol.CURRENT_VERSION if version is None else version)
            if codec is None:
                raise CaseFailure(f"no {schema} codec for type {type_name} v{version}")
            return codec, codec.plan
        handlers = self.persist if schema == "actor-persist" else self.client
        handler = getattr(handlers, _snake(type_name), None)
        if handler is None:
            raise CaseFailure(f"no {schema} handler for type {type_name}")
        return handler, handler.latest.plan

    def _check_bare(self, case: dict[str, Any], schema: str, type_name: str) -> None:
        codec, node = self._bare_codec(schema, type_name, case.get("version"))
        raw = bytes.fromhex(case["hex"])
        decoded = codec.decode(raw)
        got = to_vector(decoded, node)
        if not _same(got, case["value"]):
            raise CaseFailure(f"decoded to {json.dumps(got)}")
        if "upgraded_from" in case:
            return
        encoded = codec.encode(from_vector(case["value"], node))
        if encoded != raw:
            raise CaseFailure(f"re-encoded to {encoded.hex()}, expected {raw.hex()}")

    def _check_compat(self, case: dict[str, Any], type_name: str, encoding: str) -> None:
        if encoding == "json":
            wire: bytes | str = case["text"]
        else:
            wire = bytes.fromhex(case["hex"])
        node = plan_of(
            client_protocol.ToServer if type_name == "ToServer" else client_protocol.ToClient
        )
        if type_name == "ToServer":
            decode: Callable[[Any], Any] = (
                messages.to_server_from_json if encoding == "json" else messages.to_server_from_cbor
            )
            got = to_vector(decode(wire), node)
            if not _same(got, case["value"]):
                raise CaseFailure(f"decoded to {json.dumps(got)}")
            return
        if type_name != "ToClient":
            raise CaseFailure(f"unsupported {encoding} type {type_name}")
        from_client: Callable[[Any], Any] = (
            messages.to_client_from_json if encoding == "json" else messages.to_client_from_cbor
        )
        # The bytes RivetKit made decode to the value ...
        got = to_vector(from_client(wire), node)
        if not _same(got, case["value"]):
            raise CaseFailure(f"decoded to {json.dumps(got)}")
        # ... and what we make from the value decodes back to it along the same path.
        message = from_vector(case["value"], node, raw_payloads=True)
        ours = (
            messages.to_client_json(message)
            if encoding == "json"
            else messages.to_client_cbor(message)
        )
        back = to_vector(from_client(ours), node)
        if not _same(back, case["value"]):
            raise CaseFailure(f"our encoding {ours!r} decodes to {json.dumps(back)}")


def checkers() -> list[Checker]:
    """One checker per available twin: compiled (unless RIVETKIT_PURE=1) and pure."""
    result = []
    if not _twins.PURE_FORCED:
        compiled: ModuleType | None
        try:
            compiled = importlib.import_module("rivetkit._speedups._bare")
        except ImportError:
            if _twins.SPEEDUPS_REQUIRED:
                raise
            compiled = None
        if compiled is not None:
            result.append(Checker("compiled", compiled))
    result.append(Checker("pure", _bare_py))
    return result


def check_files(paths: Sequence[str], out: Any = sys.stdout) -> tuple[int, int]:
    """Check every case of ``paths``; print failures; return ``(passed, failed)``."""
    twins = checkers()
    passed = failed = 0
    for path in paths:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        if document.get("format") != FORMAT:
            print(f"{path}: not a {FORMAT} file", file=out)
            failed += 1
            continue
        for case in document["cases"]:
            problems = []
            for checker in twins:
                try:
                    checker.check(case)
                except CaseFailure as exc:
                    problems.append(f"{checker.twin}: {exc}")
                except Exception as exc:
                    problems.append(f"{checker.twin}: {type(exc).__name__}: {exc}")
            if problems:
                failed += 1
                print(f"FAIL {Path(path).name} {case.get('name')}: {'; '.join(problems)}", file=out)
            else:
                passed += 1
    return passed, failed


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m rivetkit.protocol.vectors")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="decode and re-encode every case of FILE...")
    check.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
    passed, failed = check_files(args.files)
    twins = ", ".join(checker.twin for checker in checkers())
    print(f"twins: {twins}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
