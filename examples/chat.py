"""The chat of DESIGN.md §4: connection params ``{"user": name}``, actions ``post`` and
``history``, event ``message``."""

from rivetkit import UserError, actor, setup

chat = actor("chat", state={"messages": []})


@chat.on_before_connect
def check_user(c, params) -> None:
    if not isinstance(params, dict) or not params.get("user"):
        raise UserError('connect with params {"user": name}', code="missing_user")


@chat.create_conn_state
def conn_state(c, params) -> dict:
    return {"user": params["user"]}


@chat.action
def post(c, text: str) -> int:
    user = c.conn.state["user"]
    c.state["messages"].append({"user": user, "text": text})
    c.broadcast("message", user, text)
    return len(c.state["messages"])


@chat.action
def history(c) -> list:
    return c.state["messages"]


registry = setup(use=[chat])
