"""The notes of DESIGN.md §4: an actor with its own SQL database (``c.db``).

``add(text)`` inserts a row and returns its id; ``list()`` returns ``[{"id", "text"}]`` in id
order. The table comes from a migration applied when the actor wakes.
"""

from rivetkit import actor, setup
from rivetkit.db import Database

notes = actor(
    "notes",
    db=Database(
        migrations=[
            "CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL)",
        ]
    ),
)


@notes.action
async def add(c, text: str) -> int:
    result = await c.db.execute("INSERT INTO notes (text) VALUES (?)", text)
    return result.last_row_id


@notes.action(name="list")
async def list_notes(c) -> list:
    return await c.db.query("SELECT id, text FROM notes ORDER BY id")


registry = setup(use=[notes])
