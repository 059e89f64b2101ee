"""The protocol room: wire formats as pure data in, bytes out (no I/O, no asyncio).

BARE and vbare:

* :mod:`rivetkit.protocol.schema`: BARE schemas declared as annotated record classes;
* :mod:`rivetkit.protocol.plan`: codec plans, the plain-data form of a schema both twins compile;
* :mod:`rivetkit.protocol.bare`: the selected twin of the BARE codec engine (``Codec``);
* :mod:`rivetkit.protocol._bare_py`: the pure-Python twin of that engine;
* :mod:`rivetkit.protocol.vbare`: the 2-byte version prefix and step-by-step upgrades.

RivetKit's schemas (records and versioned handlers):

* :mod:`rivetkit.protocol.actor_persist`: the bytes stored for an actor (v1-v4);
* :mod:`rivetkit.protocol.client_protocol`: client <-> actor messages and HTTP bodies (v1-v4);
* :mod:`rivetkit.protocol.envoy_protocol`: envoy <-> Rivet Engine messages (v8);
* :mod:`rivetkit.protocol.inspector_protocol`: inspector <-> actor messages (v1-v6).

Values and the json/cbor encodings of the client protocol:

* :mod:`rivetkit.protocol.values`: the JSON-compat layer and the CBOR of user values
  (``cbor_dumps``/``cbor_loads``), used for state, queues, schedules and payloads;
* :mod:`rivetkit.protocol.trees`: the encodings and the helpers the json/cbor trees share;
* :mod:`rivetkit.protocol.messages`: the ``/connect`` messages in the json, cbor and bare
  encodings;
* :mod:`rivetkit.protocol.http_bodies`: the HTTP bodies (action, queue, error) in each encoding.

Actor keys:

* :mod:`rivetkit.protocol.actor_keys`: an actor key (a list of strings) to and from its
  one-string form, as RivetKit's clients and drivers write it.

Checks:

* :mod:`rivetkit.protocol.vectors`: ``python -m rivetkit.protocol.vectors check FILE...``
  against RivetKit's golden vectors.

Nothing is imported here, so importing one format loads only what it needs.
"""
