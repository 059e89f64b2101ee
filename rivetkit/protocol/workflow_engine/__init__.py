"""workflow-engine: the bytes RivetKit's durable workflow engine stores (schema v1).

* :mod:`~rivetkit.protocol.workflow_engine.types`: one Python type per schema type;
* :mod:`~rivetkit.protocol.workflow_engine.keys`: the FoundationDB-tuple keys, locations and
  the name registry;
* :mod:`~rivetkit.protocol.workflow_engine.codec`: vbare + BARE records, the state text and
  the CBOR records;
* :mod:`~rivetkit.protocol.workflow_engine.cbor`: CBOR of user data as cbor-x writes it.

The layer knows nothing of the runtime: bytes in, values out. Keys here are engine keys;
inside an actor they are stored after :data:`~rivetkit.protocol.workflow_engine.keys.ACTOR_PREFIX`.
"""

from __future__ import annotations
