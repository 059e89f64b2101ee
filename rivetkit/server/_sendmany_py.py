"""Pure twin of :mod:`rivetkit._speedups._sendmany`: one non-blocking ``write`` per socket,
shared by the threads that run a :class:`SendJob`.

A broadcast ends with one write to each of thousands of sockets (see
:class:`rivetkit.server.ws_transport.Flusher`). A :class:`SendJob` makes them on raw file
descriptors; several threads may call its :meth:`SendJob.run` at once, each claiming the next
:data:`CHUNK` writes until none is left, so that a thread the system leaves waiting takes
fewer. The compiled twin runs them with the GIL released. Only descriptors of non-blocking
stream sockets whose transport buffers nothing may be given: the bytes then leave exactly as
the transport's own ``write`` would send them.
"""

from __future__ import annotations

import itertools
import os

__all__ = ["CHUNK", "SendJob"]

#: Writes a thread claims at a time.
CHUNK = 16


class SendJob:
    """The writes of one flush: ``datas[i]`` to ``fds[i]``, one ``write`` each.

    Raises IndexError when the two lists differ in length, and TypeError when one is not a
    list, a descriptor is not an ``int`` or a buffer not ``bytes`` (nothing is written).
    """

    __slots__ = ("_claims", "_count", "_datas", "_fds", "_left")

    def __init__(self, fds: list[int], datas: list[bytes]) -> None:
        if type(fds) is not list or type(datas) is not list:
            raise TypeError("SendJob takes two lists")
        if len(fds) != len(datas):
            raise IndexError("SendJob: the lists differ in length")
        for fd in fds:
            if type(fd) is not int:
                raise TypeError(f"SendJob writes to int descriptors, not {type(fd).__name__}")
        for data in datas:
            if type(data) is not bytes:
                raise TypeError(f"SendJob writes bytes, not {type(data).__name__}")
        self._fds = list(fds)
        self._datas = list(datas)
        self._count = len(fds)
        self._claims = itertools.count(0, CHUNK)  # next() is atomic: one claim per thread
        self._left: list[tuple[int, int]] = []

    def run(self) -> None:
        """Make writes until none is left (several threads may run it at once; each write is
        made by exactly one of them)."""
        fds, datas, count, left = self._fds, self._datas, self._count, self._left
        while True:
            start = next(self._claims)
            if start >= count:
                return
            for i in range(start, min(start + CHUNK, count)):
                data = datas[i]
                try:
                    written = os.write(fds[i], data)
                except OSError as exc:
                    left.append((i, -(exc.errno or 0)))
                    continue
                if written != len(data):
                    left.append((i, written))

    def left(self) -> list[int]:
        """What did not leave whole, once every :meth:`run` returned, flat and by index:
        ``[i, written, i, written, ...]``, where ``written`` is the bytes written (a short
        write, or 0) or ``-errno`` (EAGAIN: the socket's buffer is full; EPIPE,
        ECONNRESET...: the caller's transport reports it when it writes the rest). An empty
        list: every buffer left whole."""
        return [value for pair in sorted(self._left) for value in pair]
