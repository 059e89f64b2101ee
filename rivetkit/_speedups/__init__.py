"""Compiled twins of the hot paths; each module here has a pure-Python twin with the same API,
chosen by rivetkit._twins.
"""
