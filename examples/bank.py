"""The bank: actors calling actors with ``c.client()``.

``account`` (one actor per account key) holds a balance; ``bank`` moves money between two
accounts by calling them, as any client would, through ``c.client()``: in process in embedded
mode, through the engine (or in process when the account lives here) in engine mode.

A transfer is two calls, not a transaction: ``withdraw`` on the source, then ``deposit`` on
the target. When the withdrawal is refused (``user/insufficient_funds``) nothing moved and the
error reaches the caller unchanged. When the deposit fails after the withdrawal, the bank
gives the amount back to the source (``deposit`` again) and raises the deposit's error. What
this cannot cover: a bank actor that crashes between the two calls loses the amount in flight,
and a deposit whose reply was lost (a timeout after the target applied it) is refunded too.
"""

from __future__ import annotations

from typing import TypedDict

from rivetkit import ActorContext, UserError, actor, setup


class Balance(TypedDict):
    """An account's state."""

    balance: int


#: What ``transfer`` returns: both new balances ("from" is a keyword, hence this form).
Transfer = TypedDict("Transfer", {"from": int, "to": int})

account = actor("account", state={"balance": 0})


def _check_amount(amount: int) -> None:
    # `amount: int` is validated (and "5" converted) before the action runs; a bool is refused
    # there too. What remains to refuse: zero and negative amounts.
    if amount <= 0:
        raise UserError(
            f"amount must be a positive integer, got {amount!r}",
            code="invalid_amount",
            metadata={"amount": amount},
        )


@account.action
def deposit(c: ActorContext[Balance], amount: int) -> int:
    """Add ``amount`` (a positive integer) to the balance; returns the new balance."""
    _check_amount(amount)
    c.state["balance"] += amount
    return c.state["balance"]


@account.action
def withdraw(c: ActorContext[Balance], amount: int) -> int:
    """Take ``amount`` from the balance; returns the new balance.

    Raises ``UserError(code="insufficient_funds")`` (metadata: balance and amount) when the
    balance is smaller than ``amount``; the balance is then unchanged.
    """
    _check_amount(amount)
    balance = c.state["balance"]
    if balance < amount:
        raise UserError(
            f"insufficient funds: balance {balance}, asked {amount}",
            code="insufficient_funds",
            metadata={"balance": balance, "amount": amount},
        )
    c.state["balance"] = balance - amount
    return c.state["balance"]


@account.action
def balance(c: ActorContext[Balance]) -> int:
    """The current balance."""
    return c.state["balance"]


bank = actor("bank", state={"transfers": 0})


@bank.action
async def transfer(
    c: ActorContext[dict[str, int]], from_key: str, to_key: str, amount: int
) -> Transfer:
    """Move ``amount`` from ``account[from_key]`` to ``account[to_key]``.

    Returns ``{"from": new_from_balance, "to": new_to_balance}``. A refused withdrawal
    (``user/insufficient_funds``) reaches the caller unchanged, and nothing moved. A failed
    deposit is refunded to the source, then its error is raised. Not atomic: see the module's
    docstring.
    """
    _check_amount(amount)
    if from_key == to_key:
        raise UserError("cannot transfer to the same account", code="same_account")
    accounts = c.client().account
    source = accounts.get_or_create([from_key])
    new_from: int = await source.withdraw(amount)  # insufficient_funds propagates as it is
    try:
        new_to: int = await accounts.get_or_create([to_key]).deposit(amount)
    except Exception:
        try:
            await source.deposit(amount)
        except Exception:
            c.log.exception(
                "refund failed: %s lost %d in a transfer to %s", from_key, amount, to_key
            )
        raise
    c.state["transfers"] += 1
    return {"from": new_from, "to": new_to}


registry = setup(use=[account, bank])
