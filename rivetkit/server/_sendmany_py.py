"""Pure twin of :mod:`rivetkit._speedups._sendmany`: one non-blocking ``write`` per socket.

A broadcast ends with one write to each of thousands of sockets (see
:class:`rivetkit.server.ws_transport.Flusher`). :func:`send_many` makes them on raw file
descriptors, and the compiled twin makes them with the GIL released, so that two threads can
share a large flush. Only descriptors of non-blocking stream sockets whose transport buffers
nothing may be given: the bytes then leave exactly as the transport's own ``write`` would
send them.
"""

from __future__ import annotations

import os

__all__ = ["send_many"]


def send_many(fds: list[int], datas: list[bytes], start: int, stop: int) -> list[int]:
    """Write ``datas[i]`` to ``fds[i]``, one ``write`` each, for ``i`` in ``range(start,
    stop)``.

    Returns what did not leave whole, flat: ``[i, written, i, written, ...]`` in order, where
    ``written`` is the bytes written (a short write, or 0) or ``-errno`` (EAGAIN: the socket's
    buffer is full; EPIPE, ECONNRESET...: the caller's transport reports it when it writes the
    rest). An empty list: every buffer left whole.

    Raises (before writing anything) IndexError when the range is not within both lists,
    and TypeError when ``fds`` or ``datas`` is not a list, one of the range's descriptors is
    not an ``int`` or one of its buffers not ``bytes``.
    """
    if type(fds) is not list or type(datas) is not list:
        raise TypeError("send_many takes two lists")
    left: list[int] = []
    if stop <= start:
        return left
    if start < 0 or stop > len(fds) or stop > len(datas):
        raise IndexError("send_many: range out of the lists")
    for i in range(start, stop):
        if type(fds[i]) is not int:
            kind = type(fds[i]).__name__
            raise TypeError(f"send_many writes to int descriptors, not {kind}")
        if type(datas[i]) is not bytes:
            raise TypeError(f"send_many writes bytes, not {type(datas[i]).__name__}")
    for i in range(start, stop):
        data = datas[i]
        try:
            written = os.write(fds[i], data)
        except OSError as exc:
            left.append(i)
            left.append(-(exc.errno or 0))
            continue
        if written != len(data):
            left.append(i)
            left.append(written)
    return left
