# cython: language_level=3
"""Compiled twin of :mod:`rivetkit.runtime._state_codec_py` (the state snapshot's CBOR).

Same API: ``encode_json_compat`` and ``encode_state``. Exact dicts, lists, strings, floats,
bools, None and ints are converted here; any other value (tuples, bytes, sets, mappings,
subclasses, ``cbor2.undefined``, ...) goes to the pure JSON-compat layer, from that level down.

``encode_state`` of plain data (values the JSON-compat form leaves as they are: exact dicts,
lists, strings, floats, bools, None and safe ints, no ``["$...", x]`` pair, under the depth
limit) skips building that form: it is the value itself, so its CBOR is ``cbor2.dumps`` of
the value (``default`` only serves types plain data has none of). Any other value, or an
error of ``cbor2`` (a lone surrogate, say), takes the full road: the same bytes and errors.
"""

import cbor2

from rivetkit.errors import EncodeError
from rivetkit.protocol import values as _values

cdef object _MAX_SAFE = _values.MAX_SAFE_INTEGER
cdef object _MIN_SAFE = -_values.MAX_SAFE_INTEGER
cdef int _MAX_DEPTH = _values.MAX_DEPTH
cdef str _BIGINT = _values.BIGINT_TAG
cdef object _pure = _values._compat_encode
cdef object _dumps_raw = _values.cbor_dumps_raw
cdef object _cbor2_dumps = cbor2.dumps


cdef bint _plain(object value, int depth):
    """True when the JSON-compat form of ``value`` is ``value`` itself (see the docstring)."""
    cdef type kind = type(value)
    cdef object item
    cdef object first
    if value is None or kind is str or kind is float or kind is bool:
        return True
    if kind is int:
        return _MIN_SAFE <= value <= _MAX_SAFE
    if depth >= _MAX_DEPTH:
        return False
    if kind is dict:
        for item in (<dict>value).values():
            if not _plain(item, depth + 1):
                return False
        return True
    if kind is list:
        if len(<list>value) == 2:
            first = (<list>value)[0]
            if type(first) is str and (<str>first).startswith("$"):
                return False
        for item in <list>value:
            if not _plain(item, depth + 1):
                return False
        return True
    return False


cdef object _encode(object value, int depth):
    cdef type kind = type(value)
    cdef list items
    cdef dict out
    cdef object first
    if value is None or kind is str or kind is float or kind is bool:
        return value
    if kind is int:
        if _MIN_SAFE <= value <= _MAX_SAFE:
            return value
        return [_BIGINT, str(value)]
    if kind is dict:
        if depth >= _MAX_DEPTH:
            raise EncodeError(f"value nests deeper than {_MAX_DEPTH} levels")
        out = {}
        for key, item in (<dict>value).items():
            out[key] = _encode(item, depth + 1)
        return out
    if kind is list:
        if depth >= _MAX_DEPTH:
            raise EncodeError(f"value nests deeper than {_MAX_DEPTH} levels")
        items = [_encode(item, depth + 1) for item in <list>value]
        if len(items) == 2:
            first = items[0]
            if isinstance(first, str) and first.startswith("$"):
                items[0] = "$" + first
        return items
    return _pure(value, depth)


def encode_json_compat(value):
    """``value`` in the client's JSON-compat form (see :mod:`rivetkit.protocol.values`)."""
    try:
        return _encode(value, 0)
    except EncodeError:
        raise
    except (RecursionError, ValueError) as exc:  # ValueError: an int too long for str()
        raise EncodeError(f"value cannot be JSON-compat encoded: {exc}") from None


def encode_state(value):
    """CBOR of the JSON-compat form of ``value``; raises EncodeError as ``cbor_dumps`` does."""
    if _plain(value, 0):
        try:
            return _cbor2_dumps(value)
        except Exception:  # the full road raises its own error for it
            pass
    return _dumps_raw(encode_json_compat(value))
