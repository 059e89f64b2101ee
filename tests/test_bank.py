"""The bank example (``examples/bank.py``): actors calling actors through ``c.client()``.

In process with :func:`rivetkit.testing.setup_test` (every encoding): a transfer moves the
money and returns both balances, a refused withdrawal (``user/insufficient_funds``) reaches
the bank's caller unchanged and moves nothing, bad amounts are refused, and a deposit that
fails after the withdrawal is refunded. Then the Python client (async and sync) against the
real server (``serve_in_background``) serving ``examples/app.py``'s registry.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rivetkit import UserError, actor, setup
from rivetkit.client import ActorError, Client, SyncClient
from rivetkit.server import serve_in_background
from rivetkit.testing import setup_test

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ENCODINGS = ["json", "cbor", "bare"]


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (with ``examples/`` importable, as app.py expects)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"_bank_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bank_example = load_example("bank")
registry = bank_example.registry


async def expect_error(call: Any, group: str, code: str) -> ActorError:
    with pytest.raises(ActorError) as info:
        await call
    assert (info.value.group, info.value.code) == (group, code), info.value
    return info.value


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_transfer_moves_money(encoding: str) -> None:
    async with setup_test(registry, encoding=encoding) as t:
        alice = t.account.get_or_create(["alice"])
        assert await alice.deposit(100) == 100
        bank = t.bank.get_or_create(["main"])
        assert await bank.transfer("alice", "bob", 30) == {"from": 70, "to": 30}
        assert await bank.transfer("bob", "alice", 5) == {"from": 25, "to": 75}
        assert await alice.balance() == 75
        assert await t.account.get(["bob"]).balance() == 25


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_insufficient_funds_reaches_the_caller_unchanged(encoding: str) -> None:
    async with setup_test(registry, encoding=encoding) as t:
        alice = t.account.get_or_create(["alice"])
        await alice.deposit(10)
        bank = t.bank.get_or_create(["main"])
        error = await expect_error(bank.transfer("alice", "bob", 11), "user", "insufficient_funds")
        assert error.metadata == {"balance": 10, "amount": 11}
        assert "insufficient funds" in error.message
        # the same error as calling the account directly
        direct = await expect_error(alice.withdraw(11), "user", "insufficient_funds")
        assert (direct.message, direct.metadata) == (error.message, error.metadata)
        assert await alice.balance() == 10
        assert await t.account.get_or_create(["bob"]).balance() == 0
        # the bank still serves
        assert await bank.transfer("alice", "bob", 10) == {"from": 0, "to": 10}


@pytest.mark.asyncio
async def test_bad_amounts_are_refused() -> None:
    async with setup_test(registry) as t:
        alice = t.account.get_or_create(["alice"])
        bank = t.bank.get_or_create(["main"])
        await alice.deposit(50)
        for amount in (0, -5):
            error = await expect_error(
                bank.transfer("alice", "bob", amount), "user", "invalid_amount"
            )
            assert error.metadata == {"amount": amount}
            await expect_error(alice.deposit(amount), "user", "invalid_amount")
            await expect_error(alice.withdraw(amount), "user", "invalid_amount")
        for amount in (1.5, "ten", True, None):
            error = await expect_error(alice.deposit(amount), "actor", "validation_error")
            assert error.metadata["field"] == "amount"
            await expect_error(bank.transfer("alice", "bob", amount), "actor", "validation_error")
        await expect_error(bank.transfer("alice", "alice", 5), "user", "same_account")
        assert await alice.balance() == 50


# A copy of the account whose deposits into "frozen" fail: the bank must refund the source.
frozen_account = actor("account", state={"balance": 0})
frozen_account.action(bank_example.withdraw)
frozen_account.action(bank_example.balance)


@frozen_account.action(name="deposit")
def frozen_deposit(c: Any, amount: int) -> int:
    if c.key == ["frozen"]:
        raise UserError("this account is frozen", code="frozen")
    result: int = bank_example.deposit(c, amount)
    return result


@pytest.mark.asyncio
async def test_a_failed_deposit_is_refunded() -> None:
    async with setup_test(setup(use=[frozen_account, bank_example.bank])) as t:
        alice = t.account.get_or_create(["alice"])
        await alice.deposit(40)
        bank = t.bank.get_or_create(["main"])
        await expect_error(bank.transfer("alice", "frozen", 15), "user", "frozen")
        assert await alice.balance() == 40
        assert await t.account.get_or_create(["frozen"]).balance() == 0


@pytest.mark.asyncio
async def test_concurrent_transfers_keep_the_total() -> None:
    async with setup_test(registry) as t:
        for name in ("a", "b", "c"):
            await t.account.get_or_create([name]).deposit(100)
        bank = t.bank.get_or_create(["main"])
        moves = [("a", "b"), ("b", "c"), ("c", "a")] * 10
        results = await asyncio.gather(
            *(bank.transfer(src, dst, 7) for src, dst in moves), return_exceptions=True
        )
        assert all(isinstance(r, dict) for r in results), results
        balances = [await t.account.get([n]).balance() for n in ("a", "b", "c")]
        assert balances == [100, 100, 100]


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_python_client_on_a_real_server(encoding: str) -> None:
    app_registry = load_example("app").registry
    async with (
        serve_in_background(app_registry) as endpoint,
        Client(str(endpoint), encoding=encoding) as client,
    ):
        await client.account.get_or_create(["alice"]).deposit(100)
        bank = client.bank.get_or_create(["main"])
        assert await bank.transfer("alice", "bob", 60) == {"from": 40, "to": 60}
        error = await expect_error(bank.transfer("alice", "bob", 41), "user", "insufficient_funds")
        assert error.status == 400
        assert await client.account.get(["alice"]).balance() == 40
        assert await client.account.get(["bob"]).balance() == 60

        def sync_calls() -> Any:
            with SyncClient(str(endpoint), encoding=encoding) as sync:
                moved = sync.bank.get_or_create(["main"]).transfer("bob", "alice", 10)
                return moved, sync.account.get(["bob"]).balance()

        assert await asyncio.to_thread(sync_calls) == ({"from": 50, "to": 50}, 50)


GUIDE = ROOT / "docs" / "guides" / "bank.md"


@pytest.mark.skipif(not GUIDE.is_file(), reason="docs/ is not shipped in the sdist")
def test_the_guide_shows_the_example_as_it_is() -> None:
    """docs/guides/bank.md's "The code" blocks are verbatim excerpts of examples/bank.py."""
    page = GUIDE.read_text(encoding="utf-8")
    section = page.split("## The code", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```", section, re.M | re.S)
    source = (EXAMPLES / "bank.py").read_text(encoding="utf-8")
    assert len(blocks) == 3
    for block in blocks:
        assert block in source, block
    assert "".join(blocks).count("@account.action") == source.count("@account.action")
    assert "transfer" in blocks[-1] and "registry = setup" in blocks[-1]


@pytest.mark.asyncio
async def test_accounts_asleep_are_woken_by_a_transfer() -> None:
    async with setup_test(registry) as t:
        alice = t.account.get_or_create(["alice"])
        await alice.deposit(20)
        bank = t.bank.get_or_create(["main"])
        assert await bank.transfer("alice", "bob", 5) == {"from": 15, "to": 5}
        ids = [await alice.resolve(), await t.account.get(["bob"]).resolve(), await bank.resolve()]
        await t.advance(120)  # past sleep_timeout (30 s): every actor sleeps, state saved
        assert not set(ids) & set(t.runtime.instances)
        assert await bank.transfer("alice", "bob", 5) == {"from": 10, "to": 10}
        assert set(ids) <= set(t.runtime.instances)


@pytest.mark.asyncio
async def test_balances_survive_a_restart(tmp_path: Path) -> None:
    async with setup_test(registry, tmp_path) as t:
        await t.account.get_or_create(["alice"]).deposit(30)
        await t.bank.get_or_create(["main"]).transfer("alice", "bob", 12)
    async with setup_test(registry, tmp_path) as t:
        assert await t.account.get(["alice"]).balance() == 18
        assert await t.account.get(["bob"]).balance() == 12
