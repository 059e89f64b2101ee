"""The engine driver: the process is an *envoy* of the Rivet Engine (DESIGN.md §7).

``EngineDriver(endpoint, namespace=..., pool=..., token=...)`` connects to the engine's
``/envoys/connect`` WebSocket (envoy protocol v8), joins a pool, and runs the actors the
engine places on it; clients reach them through the engine's gateway with the same URLs as
in embedded mode. The runtime sees the same :class:`~rivetkit.drivers.base.Driver` protocol.
Modules:

* :mod:`.driver`: :class:`EngineDriver`, the Driver: the envoy session and its collaborators;
* :mod:`.placement`: the actors placed here, started and stopped as the engine commands;
* :mod:`.manager`: the manager-side calls (create, get, list, destroy actors);
* :mod:`.kv`: each actor's KV as envoy requests within the engine's limits;
* :mod:`.alarms`: alarms for the engine (sleeping actors) and local timers (running ones);
* :mod:`.sqlkv`: the actors' SQL databases (``c.db``), SQLite pages in the actor's KV;
* :mod:`.sqlkv_pages`: those pages: the key layout, the chunk cache, commits within limits;
* :mod:`.sqlkv_vfs`: the SQLite VFS that maps database files to those pages;
* :mod:`.envoy`: :class:`EnvoyClient`, the socket, its session state and reconnects;
* :mod:`.refusals`: :class:`EngineError` and what a refused or failed connection means;
* :mod:`.tunnel`: HTTP and WebSocket tunnel traffic handed to :mod:`rivetkit.dispatch`;
* :mod:`.api`: the engine's HTTP API (actors, pools, namespaces);
* :mod:`.spawn`: :class:`LocalEngine`, a local engine from the npm package, for development;
* :mod:`.serve`: engine mode of ``rivetkit serve`` (the envoy plus ``/health`` and
  ``/metrics`` on our own port).
"""

from .driver import EngineDriver
from .envoy import EnvoyClient
from .refusals import EngineError
from .spawn import LocalEngine, find_engine_binary

__all__ = ["EngineDriver", "EngineError", "EnvoyClient", "LocalEngine", "find_engine_binary"]
