"""The version of rivetkit for Python; the single source read by the build (pyproject.toml)."""

__version__ = "0.1.0"
