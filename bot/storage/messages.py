"""Queries for the conversation log (``messages``), including the dedup claim."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy import JSON, DateTime, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.db import upsert_insert
from bot.storage.models import Message
from bot.storage.residents import record_inbound

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

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
def _pg_messages_insert(first: int) -> str:
    """INSERT … SELECT FROM unnest() of the log columns, parameters numbered from ``first``."""
    return (
        f"INSERT INTO messages ({','.join(COLUMNS)}) SELECT "
        + ",".join(f"u.c{i}::json" if col == "replies" else f"u.c{i}" for i, col in enumerate(COLUMNS))
        + " FROM unnest(" + ",".join(f"${first + i}::{t}[]" for i, t in enumerate(_PG_TYPES)) + ") AS u("
        + ",".join(f"c{i}" for i in range(len(COLUMNS))) + ") ON CONFLICT (dedup_key) DO NOTHING"
    )


_N = len(COLUMNS)
_STATE_UPSERT = (
    "INSERT INTO conversation_state (openid, state, expires_at, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (openid) DO UPDATE SET state = excluded.state, expires_at = excluded.expires_at, "
    "updated_at = excluded.updated_at"
)
_PG_STATES_FROM = (
    "INSERT INTO conversation_state (openid, state, expires_at, updated_at) "
    "SELECT u.o, u.s::json, u.e, u.u FROM unnest(${0}::text[], ${1}::text[], ${2}::timestamptz[], "
    "${3}::timestamptz[]) AS u(o, s, e, u) ON CONFLICT (openid) DO UPDATE SET state = excluded.state, "
    "expires_at = excluded.expires_at, updated_at = excluded.updated_at"
)
#: ``residents.last_inbound_at`` moved forward, never back (two processes' batches may land out of order).
_INBOUND_UPSERT = (
    "INSERT INTO residents (openid, last_inbound_at) VALUES (?, ?) ON CONFLICT (openid) DO UPDATE SET "
    "last_inbound_at = CASE WHEN residents.last_inbound_at IS NULL "
    "OR residents.last_inbound_at < excluded.last_inbound_at "
    "THEN excluded.last_inbound_at ELSE residents.last_inbound_at END"
)
_PG_INBOUND_FROM = (
    "INSERT INTO residents (openid, last_inbound_at) SELECT u.o, u.t FROM unnest(${0}::text[], "
    "${1}::timestamptz[]) AS u(o, t) ON CONFLICT (openid) DO UPDATE SET "
    "last_inbound_at = GREATEST(residents.last_inbound_at, excluded.last_inbound_at)"
)
#: The whole batch as one statement (data-modifying CTEs): one round trip, atomic without BEGIN/COMMIT.
#: The last branch commits it with ``synchronous_commit`` off for this transaction only (``set_config``
#: with is_local): the same promise SQLite's ``synchronous=NORMAL`` gives the log there — safe across
#: an application crash; a crash of the database server itself may lose the last fraction of a
#: second of log rows — and it saves the WAL flush wait on every batch (279 → 111 µs per commit here).
#: Last-inbound times are one more CTE, left out of the statement when the batch has none (most batches:
#: each process writes an openid's time at most every few minutes) — an empty ``INSERT … ON CONFLICT``
#: branch still costs its planning and execution on every batch.
def _pg_batch(inbound: bool) -> str:
    last = f", i AS ({_PG_INBOUND_FROM.format(2 * _N + 5, 2 * _N + 6)}) " if inbound else " "
    return (f"WITH c AS ({_pg_messages_insert(1)} RETURNING dedup_key), "
            f"r AS ({_pg_messages_insert(_N + 1)}), "
            f"s AS ({_PG_STATES_FROM.format(2 * _N + 1, 2 * _N + 2, 2 * _N + 3, 2 * _N + 4)})" + last +
            "SELECT dedup_key FROM c UNION ALL SELECT NULL WHERE set_config('synchronous_commit', 'off', true) IS NULL")


_PG_BATCH = {True: _pg_batch(True), False: _pg_batch(False)}
#: (openid, state, expires_at, updated_at)
StateRow = tuple[str, dict[str, Any], datetime, datetime]
#: (openid, when it last wrote to us): ``residents.last_inbound_at`` (see ``Journal.inbound``)
InboundRow = tuple[str, datetime]


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


def _pg_columns(rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Row dicts → one list per column, JSON as text (cast in SQL)."""
    out: list[list[Any]] = []
    for col in COLUMNS:
        if col == "replies":
            out.append([None if r.get(col) is None else json.dumps(r[col], ensure_ascii=False) for r in rows])
        else:
            out.append([r.get(col) for r in rows])
    return out


@dataclass(frozen=True)
class _Appendable:
    """How rows of another append-only table are written inside a journal batch (see ``Journal.append``)."""

    columns: tuple[str, ...]
    sqlite_sql: str
    pg_sql: str
    json_columns: frozenset[str]
    time_columns: frozenset[str]

    @classmethod
    def of(cls, table: Table, columns: Sequence[str]) -> "_Appendable":
        cols = tuple(columns)
        json_cols = frozenset(c for c in cols if isinstance(table.c[c].type, JSON))
        time_cols = frozenset(c for c in cols if isinstance(table.c[c].type, DateTime))
        names = ",".join(cols)
        pg_params = ",".join(f"${i + 1}::text::json" if c in json_cols else f"${i + 1}" for i, c in enumerate(cols))
        return cls(cols, f"INSERT INTO {table.name} ({names}) VALUES ({','.join('?' * len(cols))})",
                   f"INSERT INTO {table.name} ({names}) VALUES ({pg_params})", json_cols, time_cols)

    def sqlite_row(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(self._json(row[c]) if c in self.json_columns else
                     _sqlite_value("created_at", row[c]) if c in self.time_columns else row[c] for c in self.columns)

    def pg_row(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(self._json(row[c]) if c in self.json_columns else row[c] for c in self.columns)

    @staticmethod
    def _json(value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False)


#: (table, row) queued by ``Journal.append``: rows of other append-only tables, written in the batch.
Appended = tuple[Table, dict[str, Any]]


class BatchWriter:
    """Writes one batch (claims, log rows, state upserts, appended rows, last-inbound times) in one
    transaction.

    Returns the claimed keys won. On PostgreSQL this runs on asyncpg directly: one prepared
    ``INSERT … SELECT FROM unnest(arrays)`` per kind keeps the per-row work in asyncpg's C codecs.

    On SQLite the batch runs on a plain ``sqlite3`` connection **on the event loop thread**, with no
    busy wait: a batch is a few hundred microseconds of C. Handing it to a thread cost milliseconds
    under load, because the thread must win the GIL back from the busy loop after every statement
    step (measured: 2.4 ms → 0.2 ms median per batch). When another connection holds the write lock
    (a ticket being created, another worker process), ``BEGIN IMMEDIATE`` fails at once and that
    batch goes to a thread that may wait for the lock, so the loop never sleeps in SQLite's busy
    handler. The connection does not checkpoint the WAL itself (an fsync on the loop); a checkpoint
    runs in the thread, on its own connection, every :attr:`CHECKPOINT_EVERY` seconds of writing.
    """

    CHECKPOINT_EVERY = 1.0

    def __init__(self, engine: "AsyncEngine", sqlite_path: str | None = None) -> None:
        self._engine = engine
        self._path = sqlite_path
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal") if sqlite_path else None
        self._sql_cache: dict[int, str] = {}
        self._specs: dict[tuple[str, tuple[str, ...]], _Appendable] = {}
        self._last_checkpoint = time.monotonic()
        self._checkpointing: asyncio.Future[None] | None = None

    async def write(
        self, claims: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], states: Sequence[StateRow] = (),
        appended: Sequence[Appended] = (), inbound: Sequence[InboundRow] = (),
    ) -> set[str]:
        """Claims, log rows, conversation-state upserts, appended rows and last-inbound times, all in
        one transaction. ``inbound`` holds one row per openid (sorted by the caller, so two processes
        upserting the same residents lock them in the same order)."""
        if self._executor is not None:
            return await self._write_sqlite_batch(claims, rows, states, appended, inbound)
        if self._engine.dialect.name == "postgresql" and self._engine.dialect.driver == "asyncpg":
            return await self._write_asyncpg(claims, rows, states, appended, inbound)
        async with self._engine.begin() as conn:
            won = await insert_claims(conn, claims)
            await insert_rows(conn, rows)
            await upsert_states(conn, states)
            for table, row in appended:
                await conn.execute(table.insert(), [row])
            await record_inbound(conn, inbound)
        return won

    def _spec(self, table: Table, row: dict[str, Any]) -> _Appendable:
        key = (table.name, tuple(row))
        spec = self._specs.get(key)
        if spec is None:
            spec = self._specs[key] = _Appendable.of(table, tuple(row))
        return spec

    def _grouped(self, appended: Sequence[Appended]) -> list[tuple[_Appendable, list[dict[str, Any]]]]:
        groups: dict[int, tuple[_Appendable, list[dict[str, Any]]]] = {}
        for table, row in appended:
            spec = self._spec(table, row)
            groups.setdefault(id(spec), (spec, []))[1].append(row)
        return list(groups.values())

    async def _write_asyncpg(
        self, claims: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], states: Sequence[StateRow],
        appended: Sequence[Appended], inbound: Sequence[InboundRow],
    ) -> set[str]:
        """The batch as one statement of column arrays (``INSERT … SELECT FROM unnest``), whatever its size.

        SQLAlchemy would expand a batch into a multi-VALUES statement per distinct size and process
        every parameter in Python on the event loop; column arrays keep that work in asyncpg's C codecs.
        Claims, log rows and states share one statement (CTEs), so a batch costs one round trip
        instead of five (BEGIN, three statements, COMMIT); appended rows, when there are any, join it
        in a transaction. Last-inbound times are one more CTE when the batch has any.
        """
        args = [*_pg_columns(claims), *_pg_columns(rows), [s[0] for s in states],
                [json.dumps(s[1], ensure_ascii=False) for s in states], [s[2] for s in states],
                [s[3] for s in states]]
        if inbound:
            args += [[o for o, _ in inbound], [t for _, t in inbound]]
        batch = _PG_BATCH[bool(inbound)]
        async with self._engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            if not appended:
                return {r[0] for r in await raw.fetch(batch, *args)}
            async with raw.transaction():
                won = {r[0] for r in await raw.fetch(batch, *args)}
                for spec, group in self._grouped(appended):
                    await raw.executemany(spec.pg_sql, [spec.pg_row(r) for r in group])
        return won

    # --- SQLite -------------------------------------------------------------------------------------

    async def _write_sqlite_batch(
        self, claims: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], states: Sequence[StateRow],
        appended: Sequence[Appended], inbound: Sequence[InboundRow],
    ) -> set[str]:
        flat_claims = [tuple(_sqlite_value(c, r.get(c)) for c in COLUMNS) for r in claims]
        flat_rows = [tuple(_sqlite_value(c, r.get(c)) for c in COLUMNS) for r in rows]
        flat_states = [(o, json.dumps(st, ensure_ascii=False), _sqlite_value("created_at", e),
                        _sqlite_value("created_at", u)) for o, st, e, u in states]
        extra = [(spec.sqlite_sql, [spec.sqlite_row(r) for r in group]) for spec, group in self._grouped(appended)]
        if inbound:
            extra.append((_INBOUND_UPSERT, [(o, _sqlite_value("created_at", t)) for o, t in inbound]))
        args = (flat_claims, flat_rows, flat_states, extra)
        try:
            won = self._write_sqlite(*args, wait=False)
        except _LockTaken:
            assert self._executor is not None
            won = await asyncio.get_running_loop().run_in_executor(
                self._executor, lambda: self._write_sqlite(*args, wait=True))
        self._maybe_checkpoint()
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
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=0", "wal_autocheckpoint=0"):
                conn.execute(f"PRAGMA {pragma}")
            self._conn = conn
        return self._conn

    def _write_sqlite(
        self, claims: list[tuple[Any, ...]], rows: list[tuple[Any, ...]], states: list[tuple[Any, ...]],
        extra: list[tuple[str, list[tuple[Any, ...]]]], wait: bool,
    ) -> set[str]:
        """The transaction; without ``wait`` it raises :class:`_LockTaken` instead of waiting for the lock."""
        conn = self._connect()
        if wait:
            conn.execute("PRAGMA busy_timeout=10000")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not wait and _is_busy(exc):
                raise _LockTaken from exc
            raise
        finally:
            if wait:
                conn.execute("PRAGMA busy_timeout=0")
        won: set[str] = set()
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
            for sql, params_list in extra:
                conn.executemany(sql, params_list)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return won

    def _maybe_checkpoint(self) -> None:
        """Start a passive WAL checkpoint in the thread when one is due and none is running."""
        now = time.monotonic()
        if now - self._last_checkpoint < self.CHECKPOINT_EVERY or self._checkpointing is not None:
            return
        self._last_checkpoint = now
        assert self._executor is not None
        self._checkpointing = asyncio.wrap_future(self._executor.submit(self._checkpoint))
        self._checkpointing.add_done_callback(self._checkpoint_done)

    def _checkpoint(self) -> None:
        if self._checkpointer is None:
            assert self._path is not None
            self._checkpointer = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            self._checkpointer.execute("PRAGMA busy_timeout=1000")
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _checkpoint_done(self, future: "asyncio.Future[None]") -> None:
        self._checkpointing = None
        if not future.cancelled() and future.exception() is not None:
            log.warning("WAL checkpoint failed: %s", type(future.exception()).__name__)

    def close(self) -> None:
        if self._executor is not None:
            def close_all() -> None:
                for conn in (self._conn, self._checkpointer):
                    if conn is not None:
                        conn.close()
            self._executor.submit(close_all).result()
            self._conn = self._checkpointer = None
            self._executor.shutdown(wait=True)


class _LockTaken(Exception):
    """Another connection holds SQLite's write lock; the batch must wait for it off the loop."""


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)
