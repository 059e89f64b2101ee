"""Every example actor in one registry: ``rivetkit serve examples/app.py``.

Adding an example is one import and one list entry.
"""

from bank import account, bank
from chat import chat
from counter import counter
from notes import notes
from order import order
from timer import timer
from worker import worker

from rivetkit import setup

registry = setup(
    use=[
        counter,
        chat,
        worker,
        timer,
        notes,
        account,
        bank,
        order,
    ]
)
