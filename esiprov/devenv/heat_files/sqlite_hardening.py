"""Make Heat's many engine threads queue on SQLite instead of failing.

oslo.db starts SQLite transactions with a deferred ``BEGIN``. Two threads that
both read and then write deadlock on the lock upgrade, and SQLite answers
SQLITE_BUSY at once (no busy wait): stacks end CREATE_FAILED/UPDATE_FAILED with
"database is locked", even with a single client. ``BEGIN IMMEDIATE`` takes the
write lock up front, so the busy timeout applies and writers wait their turn.
MySQL and PostgreSQL do not need this.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy
from sqlalchemy.engine import Connection, Engine

BUSY_TIMEOUT_MS = 60000


def harden_sqlite() -> None:
    """Install class-level Engine listeners; they run before oslo.db's own."""

    @sqlalchemy.event.listens_for(Engine, "connect")
    def _connect(dbapi_con: Any, record: Any) -> None:
        if type(dbapi_con).__module__.startswith("sqlite3"):
            dbapi_con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    @sqlalchemy.event.listens_for(Engine, "begin")
    def _begin(conn: Connection) -> None:
        # oslo.db skips its own plain BEGIN when this marker is set.
        if conn.dialect.name == "sqlite" and "in_transaction" not in conn.info:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            conn.info["in_transaction"] = True
