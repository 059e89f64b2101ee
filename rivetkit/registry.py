"""The registry: the set of actor definitions an app serves."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from rivetkit.actor import ActorDefinition
from rivetkit.errors import RivetError

__all__ = ["Registry", "setup"]


class Registry:
    """Actor definitions by name, as made by :func:`setup`.

    ``actors`` maps each actor name to its :class:`~rivetkit.actor.ActorDefinition`, in the
    order given. A registry also supports ``name in registry``, ``len()`` and iteration over
    the definitions.
    """

    __slots__ = ("actors",)

    actors: dict[str, ActorDefinition]

    def __init__(self, actors: Iterable[ActorDefinition] = ()) -> None:
        self.actors = {}
        for definition in actors:
            self.add(definition)

    def add(self, definition: ActorDefinition) -> None:
        """Add an actor definition.

        :raises TypeError: when ``definition`` is not an :class:`~rivetkit.actor.ActorDefinition`
        :raises ValueError: when another definition already has its name
        """
        if not isinstance(definition, ActorDefinition):
            raise TypeError(
                f"setup(use=...) takes actor definitions (made by actor()), got "
                f"{type(definition).__name__} {definition!r}"
            )
        existing = self.actors.get(definition.name)
        if existing is not None:
            if existing is definition:
                raise ValueError(f"actor {definition.name!r} is listed twice")
            raise ValueError(f"two actors are named {definition.name!r}")
        self.actors[definition.name] = definition

    def get(self, name: str) -> ActorDefinition:
        """The definition of the actor named ``name``.

        :raises RivetError: ``actor/not_registered`` (metadata ``{"name": name}``) when there
            is none
        """
        definition = self.actors.get(name)
        if definition is None:
            raise RivetError(
                "actor",
                "not_registered",
                f"no actor named {name!r} is registered",
                metadata={"name": name},
            )
        return definition

    def __contains__(self, name: object) -> bool:
        return name in self.actors

    def __iter__(self) -> Iterator[ActorDefinition]:
        return iter(self.actors.values())

    def __len__(self) -> int:
        return len(self.actors)

    def __repr__(self) -> str:
        return f"<Registry actors={list(self.actors)}>"


def setup(*, use: Iterable[ActorDefinition]) -> Registry:
    """A registry of the actors in ``use``: ``registry = setup(use=[counter, chat])``.

    :raises TypeError: when an item of ``use`` is not an actor definition
    :raises ValueError: when two definitions share a name
    """
    if isinstance(use, ActorDefinition):
        raise TypeError("setup(use=...) takes a list of actor definitions, not a single one")
    return Registry(use)
