"""What an envoy session reports to its owner: :class:`EnvoyHandler` (implemented by the
engine driver, :class:`~rivetkit.drivers.engine.driver.EngineDriver`)."""

from __future__ import annotations

from typing import Protocol

from rivetkit.protocol.envoy_protocol import CommandWrapper, ToEnvoyTunnelMessage

__all__ = ["EnvoyHandler"]


class EnvoyHandler(Protocol):
    """What the envoy session reports to its owner (the engine driver)."""

    def on_commands(self, commands: list[CommandWrapper]) -> None:
        """New (not replayed) commands, in order."""
        ...

    def on_tunnel_message(self, message: ToEnvoyTunnelMessage) -> None:
        """A tunnel message (HTTP or WebSocket traffic for an actor)."""
        ...

    def on_connection(self, connected: bool) -> None:
        """The session is ready (``ToEnvoyInit`` received) or the socket dropped."""
        ...

    def on_lost(self) -> None:
        """Disconnected for longer than the lost threshold: the engine gave our actors up."""
        ...

    def on_evicted(self, reason: str) -> None:
        """Closed for good (evicted by another socket with our key); no reconnect follows."""
        ...
