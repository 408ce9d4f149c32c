"""Engine and session factory for SQLite (embedded default) and PostgreSQL.

Why the pragmas: SQLite under several writers needs WAL and a busy timeout, or a burst of webhook
traffic turns into "database is locked" errors; ``synchronous=NORMAL`` in WAL mode keeps commits
durable across application crashes at a fraction of the fsync cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_dir(url: str) -> None:
    """Create the directory of a file-backed SQLite database (``var/`` by default)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """An async engine with the right settings for the backend named by ``url``."""
    if is_sqlite(url):
        ensure_sqlite_dir(url)
        engine = create_async_engine(url, pool_pre_ping=False)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def upsert_insert(conn: AsyncConnection, table: Table) -> Any:
    """An INSERT that supports ``on_conflict_do_nothing`` / ``on_conflict_do_update``.

    SQLAlchemy spells ON CONFLICT per dialect; the two we run on share the same API.
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database {dialect}")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def sqlite_path(url: str) -> str | None:
    """The file of a file-backed SQLite URL, else None."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        ensure_sqlite_dir(url)
        return u.database
    return None
