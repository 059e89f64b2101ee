"""The engine nodes an envoy knows: one URL or several, and which one is in use.

An envoy (:class:`~.envoy.EnvoyClient`), its HTTP API client (:class:`~.api.EngineApi`) and
its actors' gateway client (:mod:`.actor_calls`) share one :class:`Endpoints`. Each of them
uses :attr:`Endpoints.current`; when a node cannot be reached, the one that noticed calls
:meth:`Endpoints.advance` and everyone moves on to the next node, round robin. With a single
URL nothing moves.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

__all__ = ["Endpoints", "parse_endpoints"]


def parse_endpoints(urls: str | Sequence[str]) -> tuple[str, ...]:
    """The engine URLs of ``urls`` (one URL, a comma-separated string of URLs, or a
    sequence of URLs), without trailing ``/``, duplicates dropped, in the order given.

    :raises ValueError: no URL, an empty entry, or an entry that is not an ``http://`` or
        ``https://`` URL with a host (the message names the entry)
    """
    if isinstance(urls, str):
        entries = urls.split(",")
    else:
        entries = []
        for item in urls:
            if not isinstance(item, str):
                raise ValueError(f"engine endpoints must be strings, got {item!r}")
            entries.extend(item.split(","))
    if not entries:
        raise ValueError("no engine endpoint given")
    result: list[str] = []
    for position, entry in enumerate(entries, 1):
        url = entry.strip().rstrip("/")
        if not url:
            raise ValueError(
                f"engine endpoint {position} of {len(entries)} is empty (in {urls!r}); "
                "give URLs like http://127.0.0.1:6420, separated by commas"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"engine endpoint {url!r} is not an http:// or https:// URL with a host"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"engine endpoint {url!r} must not have a query or a fragment")
        if url not in result:
            result.append(url)
    return tuple(result)


class Endpoints:
    """The engine URLs, the one in use, and the move to the next one on failure.

    :param urls: one URL, a comma-separated string of URLs, or a sequence of URLs (see
        :func:`parse_endpoints`)
    :raises ValueError: an empty or malformed entry
    """

    def __init__(self, urls: str | Sequence[str] | Endpoints) -> None:
        self.urls: tuple[str, ...] = (
            urls.urls if isinstance(urls, Endpoints) else parse_endpoints(urls)
        )
        self._index = 0

    @property
    def current(self) -> str:
        """The URL in use."""
        return self.urls[self._index]

    def advance(self, failed: str | None = None) -> str:
        """Move to the next URL (round robin) and return it.

        With ``failed``, move only while ``failed`` is still the current URL: when several
        users notice the same dead node, it is skipped once, not once per user.
        """
        if failed is None or failed == self.current:
            self._index = (self._index + 1) % len(self.urls)
        return self.current

    def from_current(self) -> list[str]:
        """Every URL once, starting with the current one (the order of one round)."""
        index = self._index
        return [*self.urls[index:], *self.urls[:index]]

    def describe(self) -> str:
        """The URLs for messages: ``http://a:6420, http://b:6420``."""
        return ", ".join(self.urls)

    def __len__(self) -> int:
        return len(self.urls)

    def __iter__(self) -> Iterator[str]:
        return iter(self.urls)

    def __repr__(self) -> str:
        return f"Endpoints({list(self.urls)!r}, current={self.current!r})"
