"""The documentation's sources; a package only so that ``docs/conftest.py`` is imported as
``docs.conftest`` and never shadows ``tests/conftest.py`` (imported by the tests as
``conftest``)."""
