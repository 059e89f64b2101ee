"""vbare: a 2-byte little-endian version before the BARE body, with step-by-step upgrades.

Readers accept every supported old version and upgrade the value one version at a time to
the latest; writers always write the latest version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from rivetkit.errors import ProtocolError
from rivetkit.protocol.bare import Codec

T = TypeVar("T")

#: A reader decodes the body of one version; it gets the whole input and the body's offset.
Reader = Callable[[bytes, int], Any]
Upgrade = Callable[[Any], Any]
#: A codec twin's ``compile_plan``: (plan, error_code) -> Codec.
CompilePlan = Callable[[Any, str], Codec]


def version_prefix(version: int) -> bytes:
    """The 2-byte little-endian version prefix."""
    return version.to_bytes(2, "little")


def read_version(data: bytes, error_code: str) -> int:
    """The version in the first two bytes of ``data``."""
    if len(data) < 2:
        raise ProtocolError("input is shorter than its 2-byte version prefix", code=error_code)
    return data[0] | (data[1] << 8)


class Versioned(Generic[T]):
    """A versioned type: how to read each version, how to upgrade it, how to write the latest.

    ``readers`` maps each readable version to a reader; ``upgrades[v]`` turns a version ``v``
    value into a version ``v + 1`` value (identity where a step changed nothing).
    """

    def __init__(
        self,
        name: str,
        latest: Codec,
        latest_version: int,
        readers: Mapping[int, Reader],
        upgrades: Mapping[int, Upgrade],
        *,
        error_code: str,
    ) -> None:
        self.name = name
        self.latest = latest
        self.latest_version = latest_version
        self.readers = dict(readers)
        self.upgrades = dict(upgrades)
        self.error_code = error_code
        self._prefix = version_prefix(latest_version)
        for version in self.readers:
            for step in range(version, latest_version):
                if step not in self.upgrades:
                    raise ValueError(f"{name}: no upgrade from v{step} to v{step + 1}")

    def encode(self, value: T) -> bytes:
        """Write ``value`` at the latest version, with its prefix."""
        return self.latest.encode(value, self._prefix)

    def decode(self, data: bytes) -> T:
        """Read any supported version and upgrade it to the latest."""
        version, value = self.decode_raw(data)
        while version < self.latest_version:
            value = self.upgrades[version](value)
            version += 1
        return value  # type: ignore[no-any-return]

    def decode_raw(self, data: bytes) -> tuple[int, Any]:
        """Read the value at the version the bytes carry, without upgrading it."""
        version = read_version(data, self.error_code)
        reader = self.readers.get(version)
        if reader is None:
            supported = ", ".join(str(v) for v in sorted(self.readers))
            raise ProtocolError(
                f"{self.name}: unsupported version {version} (supported: {supported})",
                code=self.error_code,
            )
        return version, reader(data, 2)
