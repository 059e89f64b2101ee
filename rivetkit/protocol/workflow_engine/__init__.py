"""workflow-engine: the bytes RivetKit's durable workflow engine stores (schema v1).

* :mod:`~rivetkit.protocol.workflow_engine.types`: one Python type per schema type;
* :mod:`~rivetkit.protocol.workflow_engine.keys`: the FoundationDB-tuple keys and locations;
* :mod:`~rivetkit.protocol.workflow_engine.codec`: vbare + BARE values and CBOR user data.

The layer knows nothing of the runtime: bytes in, values out.
"""

from __future__ import annotations
