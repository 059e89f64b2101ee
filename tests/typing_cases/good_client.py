"""Typed calls from both clients: arguments checked, results inferred."""

from __future__ import annotations

import asyncio

from good_actor import get_count, increment, whoami

from rivetkit.client import Client, SyncClient


async def main() -> None:
    async with Client("http://127.0.0.1:6420") as client:
        handle = client.counter.get_or_create(["a"])
        total: int = await handle.call(increment, 5)
        count: int = await handle.call(get_count)
        user: str | None = await handle.call(whoami)
        async with handle.connect() as conn:
            total = await conn.call(increment, amount=1)
        print(total, count, user)


def sync_main() -> None:
    with SyncClient("http://127.0.0.1:6420") as client:
        handle = client.counter.get_or_create(["a"])
        total: int = handle.call(increment, 5)
        count: int = handle.call(get_count)
        print(total, count)


asyncio.run(main())
sync_main()
