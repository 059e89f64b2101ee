"""Where the tests find RivetKit's golden vectors (``shared/vectors`` next to the checkout).

``RIVETKIT_VECTORS_DIR`` (or the older ``RIVETKIT_VECTORS``) overrides the default, which is
``../shared/vectors`` relative to the folder holding ``tests/``. ``make test-installed`` runs
a copy of ``tests/`` outside the checkout and sets it.
"""

from __future__ import annotations

import os
from pathlib import Path


def vectors_dir() -> Path:
    """The folder of the golden vector files (``*.json``)."""
    override = os.environ.get("RIVETKIT_VECTORS_DIR") or os.environ.get("RIVETKIT_VECTORS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "shared" / "vectors"
