"""Inspector tokens from the pooled randomness (rivetkit/runtime/token_pool.py)."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys

import pytest

from rivetkit import actor, setup
from rivetkit.runtime import keys, token_pool
from rivetkit.testing import setup_runtime

TOKEN = re.compile(rb"^[A-Za-z0-9_-]{43}$")


def test_tokens_have_the_shape_of_token_urlsafe_32() -> None:
    tokens = [token_pool.inspector_token() for _ in range(3 * token_pool.BATCH + 5)]
    for token in tokens:
        assert TOKEN.match(token)
        assert len(base64.urlsafe_b64decode(token + b"=")) == token_pool.TOKEN_BYTES
    assert len(set(tokens)) == len(tokens)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_reuse_the_parents_pool() -> None:
    token_pool.inspector_token()  # the pool holds more tokens now
    script = (
        "import os, sys\n"
        "from rivetkit.runtime import token_pool\n"
        "token_pool.inspector_token()\n"
        "read, write = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.write(write, token_pool.inspector_token()); os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "child = os.read(read, 100)\n"
        "print(child != token_pool.inspector_token())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"


@pytest.mark.asyncio
async def test_a_new_actor_stores_one() -> None:
    registry = setup(use=[actor("thing", state={})])
    async with setup_runtime(registry) as client:
        actor_id = await client.get_or_create("thing", ["a"]).resolve()
        await client.runtime.instance(actor_id)
        (stored,) = await client.runtime.driver.kv_get(actor_id, [keys.INSPECTOR_TOKEN])
        assert stored is not None and TOKEN.match(stored)
