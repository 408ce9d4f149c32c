"""Queries for the conversation log (``messages``), including the dedup claim."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.db import upsert_insert
from bot.storage.models import Message

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = Message.__table__


def _insert(conn: AsyncConnection) -> Any:
    return upsert_insert(conn, T)


async def insert_claims(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert inbound rows; return the dedup keys that were new (the claims this batch won)."""
    if not rows:
        return set()
    # executemany of one cached statement: SQLAlchemy batches it into multi-row INSERTs
    # ("insertmanyvalues") without recompiling per batch size, which a .values([...]) insert would.
    stmt = _insert(conn).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(T.c.dedup_key)
    result = await conn.execute(stmt, list(rows))
    return {r[0] for r in result}


async def insert_rows(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert log rows that need no answer (replies, rows retried after an outage)."""
    if rows:
        await conn.execute(_insert(conn).on_conflict_do_nothing(index_elements=["dedup_key"]), list(rows))


async def find_reply(conn: AsyncConnection, dedup_key: str) -> tuple[list[Any] | None, str | None] | None:
    """The stored replies and action for an inbound key, or None when not answered yet."""
    row = (
        await conn.execute(
            select(T.c.replies, T.c.action).where(T.c.reply_to == dedup_key, T.c.direction == "out").limit(1)
        )
    ).first()
    return None if row is None else (row[0], row[1])




COLUMNS = ("dedup_key", "reply_to", "openid", "direction", "kind", "content", "replies", "intent", "item",
           "action", "latency_ms", "error", "request_id", "created_at")


def _sqlite_value(column: str, value: Any) -> Any:
    """Values as SQLAlchemy's SQLite types store them (UTC naive datetime text, JSON text)."""
    if value is None:
        return None
    if column == "created_at":
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    if column == "replies":
        return json.dumps(value, ensure_ascii=False)
    return value


_PG_TYPES = ("text", "text", "text", "text", "text", "text", "text", "text", "text", "text", "float8", "text", "text",
             "timestamptz")
_PG_SELECT = (
    f"INSERT INTO messages ({','.join(COLUMNS)}) SELECT "
    + ",".join(f"u.c{i}::json" if col == "replies" else f"u.c{i}" for i, col in enumerate(COLUMNS))
    + " FROM unnest(" + ",".join(f"${i + 1}::{t}[]" for i, t in enumerate(_PG_TYPES)) + ") AS u("
    + ",".join(f"c{i}" for i in range(len(COLUMNS))) + ") ON CONFLICT (dedup_key) DO NOTHING"
)
_PG_CLAIM = _PG_SELECT + " RETURNING dedup_key"
_STATE_UPSERT = (
    "INSERT INTO conversation_state (openid, state, expires_at, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (openid) DO UPDATE SET state = excluded.state, expires_at = excluded.expires_at, "
    "updated_at = excluded.updated_at"
)
_PG_STATES = (
    "INSERT INTO conversation_state (openid, state, expires_at, updated_at) "
    "SELECT u.o, u.s::json, u.e, u.u FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) "
    "AS u(o, s, e, u) ON CONFLICT (openid) DO UPDATE SET state = excluded.state, "
    "expires_at = excluded.expires_at, updated_at = excluded.updated_at"
)
#: (openid, state, expires_at, updated_at)
StateRow = tuple[str, dict[str, Any], datetime, datetime]


async def upsert_states(conn: AsyncConnection, states: Sequence[StateRow]) -> None:
    """Portable fallback for the conversation-state upserts of a batch."""
    if not states:
        return
    from bot.storage.models import ConversationState

    table = ConversationState.__table__
    ins = upsert_insert(conn, table)
    stmt = ins.on_conflict_do_update(
        index_elements=["openid"],
        set_={"state": ins.excluded.state, "expires_at": ins.excluded.expires_at, "updated_at": ins.excluded.updated_at},
    )
    await conn.execute(stmt, [{"openid": o, "state": st, "expires_at": e, "updated_at": u} for o, st, e, u in states])
_PG_INSERT = _PG_SELECT


def _pg_columns(rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Row dicts → one list per column, JSON as text (cast in SQL)."""
    out: list[list[Any]] = []
    for col in COLUMNS:
        if col == "replies":
            out.append([None if r.get(col) is None else json.dumps(r[col], ensure_ascii=False) for r in rows])
        else:
            out.append([r.get(col) for r in rows])
    return out


class BatchWriter:
    """Writes one batch (claims + plain rows) in one transaction; returns the claimed keys won.

    On PostgreSQL this is SQLAlchemy Core on the async engine. On SQLite the whole transaction runs
    in one hop to a dedicated thread on a plain ``sqlite3`` connection: aiosqlite would cross threads
    for every cursor call, and SQLAlchemy's per-row parameter processing inside a thread competes
    with the event loop for the GIL, which showed up as milliseconds of claim latency under load.
    Rows are flattened to tuples here, on the loop; the thread only runs two statements.
    """

    def __init__(self, engine: "AsyncEngine", sqlite_path: str | None = None) -> None:
        self._engine = engine
        self._path = sqlite_path
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal") if sqlite_path else None
        self._sql_cache: dict[int, str] = {}

    async def write(
        self, claims: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], states: Sequence[StateRow] = ()
    ) -> set[str]:
        """Claims, log rows and conversation-state upserts, all in one transaction."""
        if self._executor is not None:
            flat_claims = [tuple(_sqlite_value(c, r.get(c)) for c in COLUMNS) for r in claims]
            flat_rows = [tuple(_sqlite_value(c, r.get(c)) for c in COLUMNS) for r in rows]
            flat_states = [(o, json.dumps(st, ensure_ascii=False), _sqlite_value("created_at", e),
                            _sqlite_value("created_at", u)) for o, st, e, u in states]
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._write_sqlite, flat_claims, flat_rows, flat_states)
        if self._engine.dialect.name == "postgresql" and self._engine.dialect.driver == "asyncpg":
            return await self._write_asyncpg(claims, rows, states)
        async with self._engine.begin() as conn:
            won = await insert_claims(conn, claims)
            await insert_rows(conn, rows)
            await upsert_states(conn, states)
        return won

    async def _write_asyncpg(
        self, claims: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], states: Sequence[StateRow]
    ) -> set[str]:
        """One prepared ``INSERT … SELECT FROM unnest(arrays)`` per kind, whatever the batch size.

        SQLAlchemy would expand a batch into a multi-VALUES statement per distinct size and process
        every parameter in Python on the event loop; column arrays keep that work in asyncpg's C codecs.
        """
        async with self._engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            async with raw.transaction():
                won: set[str] = set()
                if claims:
                    won = {r[0] for r in await raw.fetch(_PG_CLAIM, *_pg_columns(claims))}
                if rows:
                    await raw.execute(_PG_INSERT, *_pg_columns(rows))
                if states:
                    await raw.execute(_PG_STATES, [s[0] for s in states],
                                      [json.dumps(s[1], ensure_ascii=False) for s in states],
                                      [s[2] for s in states], [s[3] for s in states])
        return won

    def _claim_sql(self, n: int) -> str:
        sql = self._sql_cache.get(n)
        if sql is None:
            one = "(" + ",".join("?" * len(COLUMNS)) + ")"
            sql = (f"INSERT INTO messages ({','.join(COLUMNS)}) VALUES {','.join([one] * n)} "
                   "ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key")
            self._sql_cache[n] = sql
        return sql

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            assert self._path is not None
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000"):
                conn.execute(f"PRAGMA {pragma}")
            self._conn = conn
        return self._conn

    def _write_sqlite(
        self, claims: list[tuple[Any, ...]], rows: list[tuple[Any, ...]], states: list[tuple[Any, ...]]
    ) -> set[str]:
        conn = self._connect()
        won: set[str] = set()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(claims), 200):  # stay under SQLite's bound-variable limit
                chunk = claims[start:start + 200]
                params = [v for row in chunk for v in row]
                won.update(r[0] for r in conn.execute(self._claim_sql(len(chunk)), params))
            if rows:
                conn.executemany(
                    f"INSERT INTO messages ({','.join(COLUMNS)}) VALUES ({','.join('?' * len(COLUMNS))})", rows
                )
            if states:
                conn.executemany(_STATE_UPSERT, states)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return won

    def close(self) -> None:
        if self._executor is not None:
            if self._conn is not None:
                self._executor.submit(self._conn.close).result()
                self._conn = None
            self._executor.shutdown(wait=True)
