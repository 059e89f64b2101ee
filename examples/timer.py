"""The timer of DESIGN.md §4: reminders that fire even after the actor went to sleep.

``remindIn(seconds, text)`` schedules ``fire(text)`` that many seconds later and returns the
schedule id; ``fire`` appends the text to the state and broadcasts event ``fired``; ``fired()``
returns the list. The actor sleeps after one idle second; the alarm wakes it.
"""

from rivetkit import ActorOptions, actor, setup

timer = actor("timer", state={"fired": []}, options=ActorOptions(sleep_timeout=1.0))


@timer.action(name="remindIn")
async def remind_in(c, seconds: float, text: str) -> str:
    return await c.schedule.after(seconds, "fire", text)


@timer.action
def fire(c, text: str) -> None:
    c.state["fired"].append(text)
    c.broadcast("fired", text)


@timer.action
def fired(c) -> list:
    return c.state["fired"]


registry = setup(use=[timer])
