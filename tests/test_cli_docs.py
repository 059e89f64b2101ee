"""docs/reference/cli.md names every command and option of the ``rivetkit`` parser, so the
page cannot drift from the code."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from rivetkit.cli import _parser

PAGE = Path(__file__).resolve().parent.parent / "docs" / "reference" / "cli.md"


def walk(parser: argparse.ArgumentParser, prefix: str) -> Iterator[tuple[str, str]]:
    """``(command, option)`` for every visible option and subcommand below ``parser``."""
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield "", f"{prefix} {name}"
                yield from walk(sub, f"{prefix} {name}")
            continue
        for option in action.option_strings:
            yield prefix, option


def test_every_option_is_documented() -> None:
    text = PAGE.read_text()
    found = list(walk(_parser(), "rivetkit"))
    assert ("rivetkit serve", "--reload") in found
    assert ("", "rivetkit inspect token") in found
    assert ("rivetkit serve", "--max-connections") in found
    assert ("rivetkit inspect token", "--data-dir") in found
    missing = [f"{command} {option}" for command, option in found if f"`{option}" not in text]
    assert not missing, f"not in {PAGE.name}: {missing}"
    for command in {command for command, _ in found if command}:
        assert f"## `{command}`" in text, command
