"""Validation of incoming values against type hints, with pydantic v2.

An action's parameters that carry type hints (pydantic models, dataclasses, ``TypedDict``\\ s,
``int``, ``list[str]``, ...) are validated and converted before the action runs; a failure is
a :class:`~rivetkit.errors.RivetError` ``actor/validation_error`` whose ``metadata`` is
``{"field": <dotted path or None>, "errors": [{"type", "loc", "msg"}, ...]}``.

Costs: a :class:`pydantic.TypeAdapter` is built once per annotated parameter, when the
validator is built (usually at definition time); pydantic itself is imported only then.
Plain ``int``, ``float``, ``str``, ``bool`` and ``bytes`` parameters are checked with a
``type(x) is T`` test first and reach pydantic only for conversion (``"5"`` to ``5``) or to
report an error. Parameters without a hint (or hinted ``Any``/``object``) cost nothing, and an
action with none gets no validator at all.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from rivetkit.errors import RivetError

__all__ = [
    "ArgsValidator",
    "Validator",
    "build_action_validator",
    "build_validator",
    "is_async_callable",
]

#: Validates and converts one value; raises ``actor/validation_error``.
Validator = Callable[[Any], Any]
#: Validates and converts an action's positional arguments (the context excluded).
ArgsValidator = Callable[[list[Any]], list[Any]]

# At most this many pydantic errors travel in an error's metadata.
_MAX_ERRORS = 10
_SCALARS = (int, float, str, bool, bytes)
_SCALAR_TYPE_ERRORS = {int: "int_type", float: "float_type"}
_SCALAR_MESSAGES = {int: "Input should be a valid integer", float: "Input should be a valid number"}
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def is_async_callable(fn: object) -> bool:
    """True when calling ``fn`` returns a coroutine, as far as can be told without calling it.

    Recognises ``async def`` functions and methods, :func:`functools.partial` objects
    wrapping them, and objects whose class defines ``async def __call__``.
    """
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    if inspect.isfunction(fn) or inspect.ismethod(fn) or isinstance(fn, type) or not callable(fn):
        return False
    return inspect.iscoroutinefunction(type(fn).__call__)


def validation_error(message: str, errors: Sequence[dict[str, Any]]) -> RivetError:
    """An ``actor/validation_error`` whose metadata names the first error's field.

    ``errors`` are ``{"type", "loc", "msg"}`` dicts with ``loc`` a list of names and indexes.
    """
    errors = list(errors[:_MAX_ERRORS])
    loc = errors[0]["loc"] if errors else []
    field = ".".join(str(part) for part in loc) if loc else None
    return RivetError(
        "actor", "validation_error", message, metadata={"field": field, "errors": errors}
    )


def _is_passthrough(tp: Any) -> bool:
    return tp is Any or tp is object or tp is inspect.Parameter.empty


def _from_pydantic(prefix: list[str | int], pydantic_errors: Sequence[Any]) -> RivetError:
    errors = [
        {"type": e["type"], "loc": [*prefix, *e["loc"]], "msg": e["msg"]}
        for e in pydantic_errors[:_MAX_ERRORS]
    ]
    first = errors[0]
    path = ".".join(str(part) for part in first["loc"])
    return validation_error(f"{path}: {first['msg']}" if path else first["msg"], errors)


def _converter(tp: Any, field: str | None, *, owner: str = "") -> Validator | None:
    """The converter for values of ``tp``; None when ``tp`` lets everything through."""
    if _is_passthrough(tp):
        return None
    from pydantic import TypeAdapter, ValidationError
    from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

    try:
        adapter: TypeAdapter[Any] = TypeAdapter(tp)
    except (PydanticSchemaGenerationError, PydanticUserError) as exc:
        where = f"{owner}parameter {field!r}" if field is not None else f"{owner}type"
        raise TypeError(f"{where}: cannot validate values of type {tp!r}: {exc}") from exc
    prefix: list[str | int] = [field] if field is not None else []
    validate_python = adapter.validate_python

    def slow(value: Any) -> Any:
        try:
            return validate_python(value)
        except ValidationError as exc:
            raise _from_pydantic(
                prefix, exc.errors(include_url=False, include_context=False)
            ) from None

    if tp not in _SCALARS:
        return slow

    if tp is int or tp is float:
        # pydantic's lax mode turns True into 1; a boolean where a number is declared is a bug.
        def scalar_slow(value: Any) -> Any:
            if type(value) is bool:
                raise _from_pydantic(
                    prefix,
                    [{"type": _SCALAR_TYPE_ERRORS[tp], "loc": (), "msg": _SCALAR_MESSAGES[tp]}],
                )
            return slow(value)

    else:
        scalar_slow = slow

    if tp is float:

        def check_float(value: Any) -> Any:
            t = type(value)
            if t is float:
                return value
            if t is int:
                try:
                    return float(value)
                except OverflowError:
                    pass
            return scalar_slow(value)

        return check_float

    def check(value: Any) -> Any:
        if type(value) is tp:
            return value
        return scalar_slow(value)

    return check


def _identity(value: Any) -> Any:
    return value


def build_validator(tp: Any, *, field: str | None = None) -> Validator:
    """A function validating and converting one value against the type hint ``tp``.

    The function returns the converted value (a dict becomes the pydantic model or dataclass
    ``tp`` names) or raises ``actor/validation_error``; ``field`` names the value in the
    error's message and ``metadata["field"]`` (``"params.user"``), None for a bare path.
    ``Any`` and ``object`` give the identity function.

    :raises TypeError: when pydantic cannot build a schema for ``tp``
    """
    return _converter(tp, field) or _identity


def _hints_target(fn: Any) -> Any:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.isfunction(fn) or inspect.ismethod(fn) or not callable(fn):
        return fn
    return type(fn).__call__


class _Plan:
    """What an action's signature says about its wire arguments (context excluded)."""

    __slots__ = ("annotated", "params", "required", "var_positional")

    def __init__(self, fn: Callable[..., Any], label: str) -> None:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            # No introspectable signature (some builtins): nothing to check.
            self.params: list[inspect.Parameter] = []
            self.required = 0
            self.var_positional = True
            self.annotated = False
            return
        params = list(sig.parameters.values())
        if not params or params[0].kind not in (*_POSITIONAL, inspect.Parameter.VAR_POSITIONAL):
            raise TypeError(f"{label}: must take the context as its first positional parameter")
        if params[0].kind is inspect.Parameter.VAR_POSITIONAL:
            params = params[:1]  # (*args) takes the context and everything after it
        rest = params[1:]
        for p in rest:
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty:
                raise TypeError(
                    f"{label}: keyword-only parameter {p.name!r} needs a default "
                    "(wire arguments are positional)"
                )
        self.params = [p for p in rest if p.kind in _POSITIONAL]
        self.var_positional = params[0].kind is inspect.Parameter.VAR_POSITIONAL or any(
            p.kind is inspect.Parameter.VAR_POSITIONAL for p in rest
        )
        self.required = sum(1 for p in self.params if p.default is inspect.Parameter.empty)
        self.annotated = any(not _is_passthrough(p.annotation) for p in self.params)


def _make_args_validator(plan: _Plan, hints: dict[str, Any], label: str) -> ArgsValidator | None:
    checks: list[tuple[int, Validator]] = []
    for i, p in enumerate(plan.params):
        conv = _converter(hints.get(p.name, Any), p.name, owner=f"{label}: ")
        if conv is not None:
            checks.append((i, conv))
    if not checks:
        return None
    names = [p.name for p in plan.params]
    max_args = None if plan.var_positional else len(names)
    required = plan.required

    def validate(args: list[Any]) -> list[Any]:
        n = len(args)
        if max_args is not None and n > max_args:
            msg = f"expected at most {max_args} argument{'s' if max_args != 1 else ''}, got {n}"
            raise validation_error(msg, [{"type": "too_many_arguments", "loc": [], "msg": msg}])
        if n < required:
            name = names[n]
            raise validation_error(
                f"{name}: missing required argument",
                [{"type": "missing_argument", "loc": [name], "msg": "Missing required argument"}],
            )
        out = list(args)
        for i, conv in checks:
            if i < n:
                out[i] = conv(out[i])
        return out

    return validate


class _LazyArgsValidator:
    """Resolves the type hints on the first call: they named something not yet defined."""

    __slots__ = ("_fn", "_impl", "_label", "_plan")

    def __init__(self, fn: Callable[..., Any], plan: _Plan, label: str) -> None:
        self._fn = fn
        self._plan = plan
        self._label = label
        self._impl: ArgsValidator | None = None

    def __call__(self, args: list[Any]) -> list[Any]:
        impl = self._impl
        if impl is None:
            try:
                hints = _param_hints(self._fn, self._plan)
            except Exception as exc:
                raise TypeError(f"{self._label}: cannot resolve type hints: {exc}") from exc
            impl = _make_args_validator(self._plan, hints, self._label) or _identity_args
            self._impl = impl
        return impl(args)


def _param_hints(fn: Callable[..., Any], plan: _Plan) -> dict[str, Any]:
    """The resolved hints of the wire parameters of ``fn`` only.

    The context's annotation (``c: ActorContext[State]``, perhaps imported under
    ``TYPE_CHECKING`` only) and the return annotation are never evaluated: a name that exists
    for type checkers alone must not break validation.
    """
    target = _hints_target(fn)
    wanted = {p.name for p in plan.params}
    raw = getattr(target, "__annotations__", None) or {}
    needed = {name: hint for name, hint in raw.items() if name in wanted}
    if not needed:
        return {}
    namespace = getattr(inspect.unwrap(target), "__globals__", {})
    holder = types.SimpleNamespace(__annotations__=needed, __globals__=namespace)
    return typing.get_type_hints(holder, include_extras=True)


def _identity_args(args: list[Any]) -> list[Any]:
    return args


def build_action_validator(
    fn: Callable[..., Any], *, label: str = "action"
) -> ArgsValidator | None:
    """The validator of an action's wire arguments, or None when none is needed.

    ``fn``'s first parameter (the context) is skipped. Each annotated positional parameter
    validates and converts its argument; unannotated ones (and ``Any``/``object``) pass
    through, as do arguments gathered by ``*args``. When no parameter is annotated the result
    is None. The validator returns a new list; it answers ``actor/validation_error`` for a
    bad value (``metadata["field"]`` is the parameter name, dotted into nested values), for
    too many arguments (``field`` None) and for a missing argument that has no default.
    Missing trailing arguments that have defaults are left out, so the defaults apply.

    String annotations (``from __future__ import annotations``) are resolved with
    :func:`typing.get_type_hints`; when they name something not defined yet, resolution
    waits for the first call. ``label`` prefixes definition-time errors.

    :raises TypeError: when ``fn`` cannot take the context as its first positional
        parameter, has a keyword-only parameter without a default, or has an annotation
        pydantic cannot validate
    """
    plan = _Plan(fn, label)
    if not plan.annotated:
        return None
    try:
        hints = _param_hints(fn, plan)
    except NameError:
        return _LazyArgsValidator(fn, plan, label)
    return _make_args_validator(plan, hints, label)
