"""Helper apps for the tests: registries shared with child processes (run as scripts)."""
