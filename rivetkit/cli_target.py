"""What ``rivetkit serve TARGET`` serves: the registry a target names.

A target is one of:

* ``path/app.py`` or ``path/app.py:attr``: the file is imported with its folder first on
  ``sys.path`` (as ``python path/app.py`` would), and its attribute ``registry`` (or
  ``attr``) is taken;
* ``pkg.module:attr`` or ``pkg.module`` (uvicorn's habit): the module is imported with the
  current directory first on ``sys.path``.

Every failure is a :class:`CliError` with one line saying what is wrong and how to fix it.
An exception raised by the user's own module while it is imported is shown as the user's
``file:line`` and the message; the full traceback is printed first when
``RIVETKIT_TRACEBACK=1`` or ``--log-level debug``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import sysconfig
import traceback
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

__all__ = ["CliError", "load_registry", "split_target", "want_traceback"]


class CliError(Exception):
    """A failure reported as one line on stderr, with an exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def want_traceback(log_level: str | None = None) -> bool:
    """True when full tracebacks are asked for (``RIVETKIT_TRACEBACK=1`` or debug logs)."""
    return os.environ.get("RIVETKIT_TRACEBACK", "") not in ("", "0") or log_level == "debug"


def split_target(target: str) -> tuple[str, str | None]:
    """``(file or module, attribute or None)`` of ``TARGET[:attr]``."""
    head, sep, tail = target.rpartition(":")
    if sep and head and tail.isidentifier():
        return head, tail
    return target, None


def _is_module_name(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _library_dirs() -> tuple[str, ...]:
    import rivetkit

    paths = sysconfig.get_paths()
    dirs = {str(Path(rivetkit.__file__).resolve().parent)}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(name):
            dirs.add(str(Path(paths[name]).resolve()))
    return tuple(dirs)


def user_frame(tb: TracebackType | None) -> tuple[str, int] | None:
    """The deepest traceback frame outside rivetkit, the standard library and installed
    packages (the user's line), as ``(file, line)``."""
    libraries = _library_dirs()
    found: tuple[str, int] | None = None
    for frame, line in traceback.walk_tb(tb):
        filename = frame.f_code.co_filename
        if filename.startswith("<"):
            continue
        resolved = str(Path(filename).resolve())
        if not resolved.startswith(libraries):
            found = (filename, line)
    return found


def _shown_path(filename: str) -> str:
    try:
        return os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        return filename


def import_failure(what: str, exc: BaseException, log_level: str | None) -> CliError:
    """The one-line error for an exception raised while importing the user's module."""
    if want_traceback(log_level):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{_shown_path(exc.filename)}:{exc.lineno}"
        detail = f"SyntaxError: {exc.msg}"
    else:
        frame = user_frame(exc.__traceback__)
        where = f"{_shown_path(frame[0])}:{frame[1]}" if frame else what
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    hint = "" if want_traceback(log_level) else " (full traceback: RIVETKIT_TRACEBACK=1)"
    return CliError(f"importing {what} failed at {where}: {detail}{hint}")


def _import_file(path_text: str, log_level: str | None) -> ModuleType:
    path = Path(path_text)
    if not path.is_file():
        hint = ""
        if _is_module_name(path_text) and not path_text.endswith(".py"):
            hint = f" and no module named {path_text!r}"
        raise CliError(
            f"no such file: {path_text}{hint} (give your app's file, e.g. rivetkit serve "
            "app.py, or its module: rivetkit serve mypkg.app:registry)",
            2,
        )
    module_name = path.stem if path.stem.isidentifier() else "rivetkit_app"
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise CliError(f"cannot import {path_text}: give a Python file (PATH.py)", 2)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise import_failure(path_text, exc, log_level) from None
    return module


def _import_module(name: str, log_level: str | None) -> ModuleType:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            raise CliError(
                f"no module named {name!r} in {cwd} (run rivetkit from the folder that holds "
                f"{name.split('.')[0]}, or give the file: rivetkit serve path/to/app.py)",
                2,
            ) from None
        raise import_failure(name, exc, log_level) from None
    except Exception as exc:
        raise import_failure(name, exc, log_level) from None


def _findable(top: str) -> bool:
    """True when module ``top`` is in the current folder (as ``rivetkit serve app`` means
    ``app.py`` there) or importable from ``sys.path``."""
    cwd = Path.cwd()
    if (cwd / f"{top}.py").is_file() or (cwd / top / "__init__.py").is_file():
        return True
    return importlib.util.find_spec(top) is not None


def _registries_in(module: ModuleType) -> list[str]:
    from rivetkit.registry import Registry

    return [name for name, value in vars(module).items() if isinstance(value, Registry)]


def load_registry(target: str, *, log_level: str | None = None) -> tuple[Any, Path]:
    """The registry named by ``target`` and the path of the file that defines it.

    :raises CliError: when the target cannot be loaded or names no registry
    """
    from rivetkit.registry import Registry

    source, attribute = split_target(target)
    by_module = (
        not source.endswith(".py")
        and _is_module_name(source)
        and not Path(source).is_file()
        and (attribute is not None or _findable(source.split(".")[0]))
    )
    module = _import_module(source, log_level) if by_module else _import_file(source, log_level)
    name = attribute or "registry"
    registry = getattr(module, name, None)
    if registry is None:
        found = _registries_in(module)
        if found:
            fix = f"it defines {found[0]!r}: rivetkit serve {source}:{found[0]}"
        else:
            fix = (
                "make one with `registry = rivetkit.setup(use=[...])`, or name it: "
                f"rivetkit serve {source}:my_registry"
            )
        raise CliError(f"{source} has no `{name}`; {fix}", 2)
    if not isinstance(registry, Registry):
        found = _registries_in(module)
        fix = f"rivetkit serve {source}:{found[0] if found else 'REGISTRY'}"
        raise CliError(
            f"{source}:{name} is of type {type(registry).__name__}, not a registry made by "
            f"rivetkit.setup(); name the registry: {fix}",
            2,
        )
    file = getattr(module, "__file__", None)
    return registry, Path(file) if file else Path(source)
