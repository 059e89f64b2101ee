"""``RIVETKIT_TRACES`` read at every actor's start (rivetkit/traces/__init__.py,
``enabled``): a missing variable is found missing without os.environ.get's KeyError, and
every value set or removed meanwhile is seen as before."""

from __future__ import annotations

import pytest

from rivetkit.traces import ENV_SWITCH, enabled


def _reference() -> bool:
    import os

    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "off", "no")


@pytest.mark.parametrize("value", [None, "0", "1", " OFF ", "false", "no", "yes", "", "on"])
def test_enabled_reads_the_variable_as_set_now(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(ENV_SWITCH, raising=False)
    else:
        monkeypatch.setenv(ENV_SWITCH, value)
    assert enabled() is _reference()
    monkeypatch.delenv(ENV_SWITCH, raising=False)
    assert enabled() is True
