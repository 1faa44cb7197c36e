"""Give a freshly db_synced Heat SQLite DB AUTOINCREMENT primary keys.

Usage: python fix_sqlite_autoinc.py HEAT_SQLITE_FILE   (right after db_sync)

Without AUTOINCREMENT, SQLite re-uses the highest deleted rowid. Heat keeps
resource properties and cached attributes in resource_properties_data and
deletes attribute rows by id; once a new properties row re-uses such an id, a
later delete by the stale id removes the live properties row. Updates then fail
with "ResourcePropertiesData with id ... not found" and stacks stay IN_PROGRESS,
with nothing in the engine log. MySQL and PostgreSQL never re-use ids.
The tables must still be empty, since they are dropped and re-created.
"""
from __future__ import annotations

import re
import sqlite3
import sys

_ID_COLUMN = re.compile(r"\n(\s*)id INTEGER NOT NULL,")


def fix(db: str) -> list[str]:
    """Rebuild every table with an integer ``id`` key; return the table names."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA foreign_keys=OFF")
    tables = con.execute("SELECT name, sql FROM sqlite_master WHERE type='table' "
                         "AND name NOT LIKE 'sqlite_%' AND name != 'alembic_version'").fetchall()
    changed = []
    for name, sql in tables:
        if not _ID_COLUMN.search(sql) or "PRIMARY KEY (id)" not in sql:
            continue
        if con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]:
            raise SystemExit(f"table {name} is not empty; run right after db_sync")
        new_sql = _ID_COLUMN.sub(r"\n\1id INTEGER PRIMARY KEY AUTOINCREMENT,", sql, count=1)
        new_sql = re.sub(r",\s*PRIMARY KEY \(id\)", "", new_sql, count=1)
        indexes = [row[0] for row in con.execute(
            "SELECT sql FROM sqlite_master WHERE type='index' AND tbl_name=? AND sql IS NOT NULL",
            (name,))]
        con.execute(f'DROP TABLE "{name}"')
        con.execute(new_sql)
        for index in indexes:
            con.execute(index)
        changed.append(name)
    con.commit()
    # WAL persists in the file: readers stop blocking the single writer.
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    return changed


if __name__ == "__main__":
    print("AUTOINCREMENT applied to:", ", ".join(fix(sys.argv[1])))
