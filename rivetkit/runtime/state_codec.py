"""The state snapshot's CBOR: the selected twin (see ``_state_codec_py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivetkit import _twins

if TYPE_CHECKING:
    from rivetkit.runtime._state_codec_py import encode_json_compat, encode_state
else:
    _impl = _twins.load("_state_codec", "rivetkit.runtime._state_codec_py")
    encode_json_compat = _impl.encode_json_compat
    encode_state = _impl.encode_state

__all__ = ["encode_json_compat", "encode_state"]
