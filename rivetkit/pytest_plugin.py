"""The pytest plugin of rivetkit (entry point ``pytest11``): fixtures for testing actors.

See :mod:`rivetkit.testing`.
"""

from __future__ import annotations
