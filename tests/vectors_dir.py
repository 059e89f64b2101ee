"""Where the tests find RivetKit's golden vectors, and how they load them.

The vectors live in the repository, in ``tests/vectors/`` (a copy of the workspace's
``shared/vectors``; see its README), so a clone of the project alone runs every vector test.
``RIVETKIT_VECTORS_DIR`` (or the older ``RIVETKIT_VECTORS``) replaces that folder. When a
``shared/vectors`` folder sits next to the checkout, its cases are checked too: each one that
is not already, identically, in the main folder is added under the name ``shared:<name>``.

A vector file missing from the main folder is an error, never a skip.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: The in-repository copy of the vectors.
IN_REPO = Path(__file__).resolve().parent / "vectors"
#: The format tag every vector file carries.
FORMAT = "rivetkit-vectors/1"


def vectors_dir() -> Path:
    """The main folder of the golden vector files (``*.json``)."""
    override = os.environ.get("RIVETKIT_VECTORS_DIR") or os.environ.get("RIVETKIT_VECTORS")
    return Path(override) if override else IN_REPO


def shared_vectors_dir() -> Path | None:
    """``shared/vectors`` beside the checkout (the folder holding ``tests/``), if it exists."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "vectors"
    return shared if shared.is_dir() else None


def vector_dirs() -> list[Path]:
    """Every folder whose vectors the tests check: the main one first, then the shared one."""
    main = vectors_dir()
    dirs = [main]
    shared = shared_vectors_dir()
    if shared is not None and not (main.is_dir() and main.resolve() == shared.resolve()):
        dirs.append(shared)
    return dirs


def _read(path: Path) -> list[dict[str, Any]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    if document.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    cases: list[dict[str, Any]] = document["cases"]
    return cases


def load_cases(filename: str) -> list[dict[str, Any]]:
    """The cases of ``filename`` from every folder of :func:`vector_dirs`, duplicates once.

    Raises ``FileNotFoundError`` when the main folder lacks the file, so a test module that
    loads it at import fails to collect instead of skipping.
    """
    main, *extra = vector_dirs()
    path = main / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"golden vectors {path} not found: they belong in tests/vectors/ "
            "(or set RIVETKIT_VECTORS_DIR to a folder holding them)"
        )
    cases = _read(path)
    for folder in extra:
        other = folder / filename
        if not other.is_file():
            continue
        # Equal parsed files are the common case: skip the per-case comparison.
        more = _read(other)
        if more == cases:
            continue
        known = {json.dumps(c, sort_keys=True) for c in cases}
        cases = cases + [
            {**c, "name": f"shared:{c['name']}"}
            for c in more
            if json.dumps(c, sort_keys=True) not in known
        ]
    return cases
