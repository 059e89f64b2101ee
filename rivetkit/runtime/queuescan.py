"""Queue key scanning: the selected twin (see ``_queuescan_py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivetkit import _twins

if TYPE_CHECKING:
    from rivetkit.runtime._queuescan_py import message_id, message_key, peek_name, scan
else:
    _impl = _twins.load("_queuescan", "rivetkit.runtime._queuescan_py")
    message_id = _impl.message_id
    message_key = _impl.message_key
    peek_name = _impl.peek_name
    scan = _impl.scan

__all__ = ["message_id", "message_key", "peek_name", "scan"]
