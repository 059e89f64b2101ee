"""Calls that do not fit the action's definition.

``call`` is overloaded (async and sync actions), so mypy may report a mismatch as
``call-overload`` ("No overload variant of "call" matches argument types ...") rather than
``arg-type``/``call-arg``; either fails the check on that line.
"""

from __future__ import annotations

from good_actor import get_count, increment

from rivetkit.client import Client, SyncClient


async def main(client: Client, sync: SyncClient) -> None:
    handle = client.counter.get_or_create(["a"])
    await handle.call(increment, "five")  # E: arg-type|call-overload
    await handle.call(increment)  # E: call-arg|call-overload
    await handle.call(increment, 1, 2)  # E: call-arg|call-overload
    text: str = await handle.call(get_count)  # E: assignment|call-overload
    sync_handle = sync.counter.get_or_create(["a"])
    sync_handle.call(increment, "five")  # E: arg-type|call-overload
    label: str = sync_handle.call(increment, 5)  # E: assignment
    print(text, label)
