"""Every example actor in one registry: ``rivetkit serve examples/app.py``.

Adding an example is one import and one list entry.
"""

from chat import chat
from counter import counter

from rivetkit import setup

registry = setup(
    use=[
        counter,
        chat,
    ]
)
