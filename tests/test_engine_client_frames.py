"""The envoy's own client frames (rivetkit/drivers/engine/client_frames.py) against
``websockets``' serialization: the same bytes once unmasked, parsed alike by a server, and
a fresh mask per frame."""

from __future__ import annotations

import random

from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State

from rivetkit.drivers.engine import client_frames
from rivetkit.drivers.engine.client_frames import MASKS_PER_REFILL, masked_binary_frames

LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 70_000]


def unmasked(wire: bytes) -> tuple[bytes, bytes]:
    """(header without the mask bit, payload) of one masked frame."""
    length = wire[1] & 0x7F
    start = 2 + {126: 2, 127: 8}.get(length, 0)
    mask = wire[start : start + 4]
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(wire[start + 4 :]))
    return bytes([wire[0], wire[1] & 0x7F]) + wire[2:start], body


def test_frames_match_websockets_serialization() -> None:
    rng = random.Random(7)
    messages = [rng.randbytes(n) for n in LENGTHS] + [
        rng.randbytes(rng.randrange(300)) for _ in range(50)
    ]
    for message in messages:
        ours = b"".join(masked_binary_frames([message]))
        theirs = Frame(Opcode.BINARY, message).serialize(mask=True)
        assert len(ours) == len(theirs)
        assert unmasked(ours) == unmasked(theirs) == (unmasked(theirs)[0], message)


def test_a_server_parses_a_run_of_frames() -> None:
    rng = random.Random(8)
    messages = [rng.randbytes(rng.choice(LENGTHS)) for _ in range(3 * MASKS_PER_REFILL)]
    server = Protocol(Side.SERVER, state=State.OPEN, max_size=None)
    server.receive_data(b"".join(masked_binary_frames(messages)))
    events = server.events_received()
    assert [(e.opcode, e.fin, bytes(e.data)) for e in events] == [
        (Opcode.BINARY, True, m) for m in messages
    ]
    assert server.parser_exc is None


def test_each_frame_has_its_own_mask() -> None:
    client_frames._masks, client_frames._next_mask = b"", 0
    parts = masked_binary_frames([b"x"] * (MASKS_PER_REFILL + 10))
    masks = parts[1::3]
    assert all(len(mask) == 4 for mask in masks)
    assert len(set(masks)) >= len(masks) - 2  # random 32-bit masks: repeats are rare
