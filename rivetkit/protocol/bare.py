"""BARE codecs: the selected twin of the codec engine, plus helpers over schema classes.

``Codec`` and ``compile_plan`` come from ``rivetkit._speedups._bare`` (compiled) or
:mod:`rivetkit.protocol._bare_py` (pure), as chosen by :mod:`rivetkit._twins`.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from rivetkit import _twins
from rivetkit.protocol.schema import plan_of

#: The selected twin of the codec engine (a module with ``Codec``, ``Versioned`` and
#: ``compile_plan``); schema modules accept another one to check both twins side by side.
ENGINE: ModuleType = _twins.load("_bare", "rivetkit.protocol._bare_py")

if TYPE_CHECKING:
    from rivetkit.protocol._bare_py import Codec, compile_plan
else:
    Codec = ENGINE.Codec
    compile_plan = ENGINE.compile_plan

__all__ = ["ENGINE", "Codec", "codec_for", "compile_plan"]


def codec_for(tp: Any, error_code: str = "invalid_data") -> Codec:
    """Compile a codec for a schema type (a record class, union or annotated type)."""
    return compile_plan(plan_of(tp), error_code)
