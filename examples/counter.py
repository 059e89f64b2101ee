"""The counter of DESIGN.md §4: state ``{"count": 0}``, actions ``increment`` and ``getCount``."""

from rivetkit import UserError, actor, setup

counter = actor("counter", state={"count": 0})  # or create_state=fn(c, input)


@counter.action  # wire name = function name
async def increment(c, amount: int = 1) -> int:
    if amount < 0:
        raise UserError("amount must be >= 0", code="negative_amount")
    c.state["count"] += amount
    c.broadcast("newCount", c.state["count"])
    return c.state["count"]


@counter.action(name="getCount")  # explicit wire name
def get_count(c) -> int:  # sync actions allowed
    return c.state["count"]


registry = setup(use=[counter])
