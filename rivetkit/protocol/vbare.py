"""vbare: a 2-byte little-endian version before the BARE body, with step-by-step upgrades.

Readers accept every supported old version and upgrade the value one version at a time to
the latest; writers always write the latest version. :class:`Versioned` is part of the codec
engine, so it comes from the selected twin like :class:`~rivetkit.protocol.bare.Codec`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivetkit.protocol.bare import ENGINE

if TYPE_CHECKING:
    from rivetkit.protocol._bare_py import Fallback, Reader, Upgrade, Versioned
else:
    Versioned = ENGINE.Versioned

__all__ = ["Fallback", "Reader", "Upgrade", "Versioned", "version_prefix"]


def version_prefix(version: int) -> bytes:
    """The 2-byte little-endian version prefix."""
    return version.to_bytes(2, "little")
