"""The inspector page the Rivet dashboard embeds, and what ``/metadata`` tells the dashboard.

The dashboard served by the Rivet Engine (``/ui/``) picks how to inspect an actor from the
``version`` in the actor's ``GET /metadata``: from :data:`IFRAME_MIN_VERSION` on it loads
``/gateway/{actor}/inspector/ui/?actorId=&shellOrigin=&theme=`` in an iframe and draws only the
tab strip; the page inside draws the tabs. Older versions get the dashboard's inline inspector
with fewer tabs (no Schedules before 2.3.4).

We report :data:`COMPAT_VERSION`, the RivetKit release whose protocols we implement and test
against (client, envoy, inspector v1..v6, persisted bytes), and our own version under
``implementationVersion``. At ``/inspector/ui/`` we serve our own page (``assets/``: plain
HTML, JavaScript and CSS written for this project, no dependencies, no build step). It speaks
the dashboard's postMessage protocol (``ready``, ``init``, ``tabs-available``,
``set-active-tab``, ``token-refresh-needed``), reads the actor through the inspector's HTTP
routes with the token the dashboard hands it, and listens to the inspector WebSocket
(``protocol_version=6``) only to learn *what* changed: each push makes it re-read that part.

These routes need no token (the page holds no data):

=============================== ===========================================================
path                            answer
=============================== ===========================================================
``/inspector/ui/``              the page (``text/html``), also as ``/inspector/ui/index.html``
``/inspector/ui/inspector.js``  its script
``/inspector/ui/inspector.css`` its style sheet
``/inspector/tab.css``          the same style sheet (custom tabs link it)
anything else under ``ui/``     404 ``inspector.ui_asset_not_found``
=============================== ===========================================================
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from typing import Final

from rivetkit._version import __version__

__all__ = [
    "COMPAT_VERSION",
    "IFRAME_MIN_VERSION",
    "PAGE_HTML",
    "asset",
    "metadata",
]

#: The RivetKit release we are compatible with: what ``/metadata`` reports as ``version``.
COMPAT_VERSION: Final = "2.3.19"
#: The first RivetKit version the dashboard loads ``/inspector/ui/`` for.
IFRAME_MIN_VERSION: Final = "2.3.0"

_ASSETS: Final = {
    "inspector.js": "text/javascript; charset=utf-8",
    "inspector.css": "text/css; charset=utf-8",
}

#: The page shell; the script draws everything.
PAGE_HTML: Final = """<!doctype html>
<html lang="en" class="dark">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Actor inspector</title>
<link rel="stylesheet" href="inspector.css">
</head>
<body>
<main id="root" data-state="booting"><p class="muted">Waiting for the dashboard…</p></main>
<script src="inspector.js"></script>
</body>
</html>
"""


@functools.cache
def _read(name: str) -> bytes:
    return resources.files("rivetkit.inspector").joinpath("assets").joinpath(name).read_bytes()


def asset(path: str) -> tuple[str, bytes] | None:
    """``(content type, bytes)`` of the UI asset at ``path`` (an ``/inspector/...`` path), or
    None when there is none."""
    # Not "/inspector/ui": the page's relative links need the trailing slash.
    if path in ("/inspector/ui/", "/inspector/ui/index.html"):
        return "text/html; charset=utf-8", PAGE_HTML.encode()
    if path == "/inspector/tab.css":
        path = "/inspector/ui/inspector.css"
    name = path.removeprefix("/inspector/ui/")
    content_type = _ASSETS.get(name)
    if content_type is None:
        return None
    return content_type, _read(name)


def metadata() -> dict[str, object]:
    """The body of an actor's ``GET /metadata``."""
    deployed = os.environ.get("NODE_ENV") == "production"
    return {
        "runtime": "rivetkit",
        "version": COMPAT_VERSION,
        "type": "deployed" if deployed else "local",
        "implementation": "rivetkit-python",
        "implementationVersion": __version__,
    }
