"""The inspector's SQL sandbox: what the inspector's database routes may run.

The inspector is never trusted as actor code is: its token opens one actor, so its SQL must
stay inside that actor's own database. Every inspector statement (``/inspector/database/*``
over HTTP and the inspector WebSocket's schema and rows requests) runs under an SQLite
authorizer (``sqlite3.Connection.set_authorizer`` in embedded mode, ``apsw``'s
``Connection.authorizer`` in engine mode), installed just before the statement and removed
just after it, in one synchronous call on the database's thread while the actor's own
statements wait their turn (:class:`rivetkit.db.ActorDatabase` runs one at a time), so
``c.db`` stays unrestricted for the actor's code. The authorizer denies:

* ``ATTACH`` and ``DETACH`` (any other file: the data directory's ``rivetkit.db``, another
  actor's database, a new file anywhere), and so also ``VACUUM`` and ``VACUUM INTO``, which
  attach a database internally;
* the functions ``load_extension`` and ``fts3_tokenizer`` (and the shell's file functions);
* ``PRAGMA`` except reading a setting (``PRAGMA user_version``) and the read-only
  introspection pragmas (``table_info``, ``table_list``, ``index_list``, ``foreign_key_list``,
  ``integrity_check`` ...); ``PRAGMA journal_mode=...``, ``writable_schema=...`` or
  ``wal_checkpoint`` are refused;
* ``BEGIN``/``COMMIT``/``ROLLBACK``/``SAVEPOINT``: an inspector statement runs alone, it
  cannot leave a transaction open on the actor's connection;
* virtual tables of modules other than SQLite's own full-text and R-tree ones;
* anything naming a database other than ``main`` and ``temp``.

A refused statement answers 403 ``inspector.forbidden_statement`` with what was refused in
the message and in ``metadata.denied``. Both drivers open their connections with extension
loading disabled (SQLite's default), so ``load_extension`` fails for actor code too.
"""

from __future__ import annotations

from typing import Any, Final

from rivetkit.errors import RivetError

__all__ = ["Sandbox", "forbidden_statement", "run_sandboxed"]

_OK: Final = 0
_DENY: Final = 1

# SQLite's authorizer action codes (sqlite3.h); the sqlite3 module does not export them all.
_PRAGMA: Final = 19
_TRANSACTION: Final = 22
_ATTACH: Final = 24
_DETACH: Final = 25
_CREATE_VTABLE: Final = 29
_FUNCTION: Final = 31
_SAVEPOINT: Final = 32

#: Pragmas whose argument only names a table, an index or a limit: read-only either way.
_INTROSPECTION_PRAGMAS: Final = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
    }
)
#: Pragmas that may be read (without an argument; with one they would change something).
_READABLE_PRAGMAS: Final = frozenset(
    {
        "application_id",
        "auto_vacuum",
        "automatic_index",
        "busy_timeout",
        "cache_size",
        "cache_spill",
        "cell_size_check",
        "collation_list",
        "compile_options",
        "data_version",
        "defer_foreign_keys",
        "encoding",
        "foreign_keys",
        "freelist_count",
        "function_list",
        "ignore_check_constraints",
        "journal_mode",
        "journal_size_limit",
        "legacy_alter_table",
        "locking_mode",
        "max_page_count",
        "module_list",
        "page_count",
        "page_size",
        "pragma_list",
        "query_only",
        "recursive_triggers",
        "reverse_unordered_selects",
        "schema_version",
        "secure_delete",
        "synchronous",
        "temp_store",
        "trusted_schema",
        "user_version",
        "wal_autocheckpoint",
        "writable_schema",
    }
)
_DENIED_FUNCTIONS: Final = frozenset(
    {"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"}
)
_VTABLE_MODULES: Final = frozenset({"fts3", "fts4", "fts5", "rtree", "rtree_i32", "geopoly"})
_DATABASES: Final = frozenset({"main", "temp"})


def _refusal(action: int, arg1: str | None, arg2: str | None, database: str | None) -> str | None:
    """Why the authorizer refuses this action, or None when it is allowed."""
    if action == _ATTACH:
        return "ATTACH (or VACUUM, which attaches a database): no other database file"
    if action == _DETACH:
        return "DETACH"
    if action == _PRAGMA:
        name = (arg1 or "").lower()
        if name in _INTROSPECTION_PRAGMAS or (name in _READABLE_PRAGMAS and arg2 is None):
            return None
        shown = name if arg2 is None else f"{name} = {arg2[:60]!r}"
        return f"PRAGMA {shown}: only reading pragmas is allowed"
    if action in (_TRANSACTION, _SAVEPOINT):
        verb = "SAVEPOINT" if action == _SAVEPOINT else (arg1 or "BEGIN").upper()
        return f"{verb}: inspector statements run alone, outside any transaction"
    if action == _FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return f"function {(arg2 or '').lower()}()"
    if action == _CREATE_VTABLE and (arg2 or "").lower() not in _VTABLE_MODULES:
        return f"virtual table module {(arg2 or '')[:60]!r}"
    if database is not None and database not in _DATABASES:
        return f"database {database[:60]!r}: only the actor's own database"
    return None


class Sandbox:
    """The authorizer of one inspector statement; remembers the first refusal."""

    __slots__ = ("denied",)

    def __init__(self) -> None:
        self.denied: str | None = None

    def __call__(
        self,
        action: int,
        arg1: str | None,
        arg2: str | None,
        database: str | None,
        source: str | None,
    ) -> int:
        """SQLite's authorizer callback: ``SQLITE_OK`` or ``SQLITE_DENY``."""
        reason = _refusal(action, arg1, arg2, database)
        if reason is None:
            return _OK
        if self.denied is None:
            self.denied = reason
        return _DENY


def forbidden_statement(reason: str) -> RivetError:
    """``inspector.forbidden_statement`` (HTTP 403) naming what was refused."""
    return RivetError(
        "inspector",
        "forbidden_statement",
        f"The inspector may not run this statement: {reason}",
        metadata={"denied": reason},
    )


def _rows(cursor: Any) -> list[dict[str, Any]]:
    if cursor.description is None:
        return []
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def run_sandboxed(connection: Any, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    """Run one inspector statement on ``connection`` under the sandbox; its rows as dicts.

    ``connection`` is a ``sqlite3.Connection`` (embedded) or the engine's ``KvConnection``
    (its ``.apsw`` is the raw connection). Call it on the database's thread, holding the
    actor's database turn. Every row is fetched before the authorizer is removed (SQLite may
    prepare a statement again while stepping it).

    :raises RivetError: ``inspector.forbidden_statement`` when the sandbox refused it
    """
    sandbox = Sandbox()
    raw = getattr(connection, "apsw", None)
    was_in_transaction = bool(connection.in_transaction)
    if raw is not None:
        raw.authorizer = sandbox
    else:
        connection.set_authorizer(sandbox)
    try:
        return _rows(connection.execute(sql, params))
    except Exception:
        if sandbox.denied is not None:
            raise forbidden_statement(sandbox.denied) from None
        raise
    finally:
        if raw is not None:
            raw.authorizer = None
        else:
            connection.set_authorizer(None)
        if connection.in_transaction and not was_in_transaction:
            connection.rollback()
