"""Conversation state per resident (``conversation_state``): the dispatcher's StateStore.

Writes go through the journal's group commit (one transaction for many residents' updates).
Reads go to the database, except in a single-process deployment, where this process sees every
write and can serve reads from its own cache (``authoritative_cache``); with several worker
processes a resident's next message may land on another worker, so the cache is not used.

On SQLite the read is a primary-key lookup on a plain ``sqlite3`` connection on the loop thread:
tens of microseconds of C, where a pooled aiosqlite connection costs a thread hop per call and
showed up as 15 % of a worker's time with two workers (no authoritative cache). WAL readers never
wait for writers; if SQLite still answers "busy" (WAL recovery), the pooled path is taken.
On PostgreSQL, reads that arrive while one is in flight are answered together by one
``WHERE openid = ANY(…)`` query (:class:`_GroupedReads`): the pool checkout, its ping and the round
trip are paid once per batch instead of once per message, and the pool no longer overflows.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import as_utc
from bot.storage.messages import StateRow
from bot.storage.models import ConversationState

T = ConversationState.__table__


class StateWriter(Protocol):
    """Where state upserts go: the journal's group commit (``bot.services.journal.Journal``)."""

    async def save_state(self, row: StateRow, wait: bool = True) -> None: ...
_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


class ConversationStore:
    def __init__(self, engine: AsyncEngine, journal: StateWriter, authoritative_cache: bool = False,
                 cache_size: int = 100_000, sqlite_path: str | None = None) -> None:
        self._engine = engine
        self._path = sqlite_path
        self._direct: sqlite3.Connection | None = None
        self._grouped = _GroupedReads(engine)
        self._journal = journal
        self._cache_on = authoritative_cache
        self._cache: OrderedDict[str, tuple[dict[str, Any], datetime]] = OrderedDict()
        self._cache_size = cache_size

    def _remember(self, openid: str, state: dict[str, Any], expires_at: datetime) -> None:
        if not self._cache_on:
            return
        self._cache[openid] = (state, expires_at)
        self._cache.move_to_end(openid)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def load(self, openid: str, now: datetime) -> dict[str, Any]:
        cached = self._cache.get(openid) if self._cache_on else None
        if cached is None:
            row = await self._read(openid)
            if row is None:
                self._remember(openid, {}, _EPOCH)
                return {}
            cached = row
            self._remember(openid, *cached)
        state, expires_at = cached
        return dict(state) if expires_at > now else {}

    async def _read(self, openid: str) -> tuple[dict[str, Any], datetime] | None:
        if self._path is not None:
            try:
                return self._read_direct(openid)
            except sqlite3.OperationalError:
                pass
        return await self._grouped.get(openid)

    def _read_direct(self, openid: str) -> tuple[dict[str, Any], datetime] | None:
        if self._direct is None:
            assert self._path is not None
            self._direct = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            self._direct.execute("PRAGMA busy_timeout=0")
        row = self._direct.execute(
            "SELECT state, expires_at FROM conversation_state WHERE openid = ?", (openid,)).fetchone()
        if row is None:
            return None
        # Stored the way SQLAlchemy stores DateTime on SQLite: naive UTC text.
        return dict(json.loads(row[0]) if row[0] else {}), as_utc(datetime.fromisoformat(row[1]))

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
            self._direct = None

    async def save(self, openid: str, state: dict[str, Any], expires_at: datetime, now: datetime) -> None:
        """Persist through the group commit. With an authoritative cache this process is the only
        reader, so the reply need not wait for the commit; otherwise it waits, so that any worker
        reads the new state for the resident's next message."""
        self._remember(openid, dict(state), expires_at)
        await self._journal.save_state((openid, dict(state), expires_at, now), wait=not self._cache_on)

    async def clear(self, openid: str) -> None:
        """An empty state that is already expired: cheaper than a DELETE through the group commit."""
        await self.save(openid, {}, _EPOCH, _EPOCH)


StateValue = tuple[dict[str, Any], datetime]


class _GroupedReads:
    """State reads coalesced: whoever asks while a query runs is answered by the next one."""

    def __init__(self, engine: AsyncEngine, max_batch: int = 500) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._waiting: dict[str, list[asyncio.Future[StateValue | None]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def get(self, openid: str) -> StateValue | None:
        future: asyncio.Future[StateValue | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(openid, []).append(future)
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="state-reads")
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                keys = list(self._waiting)[: self._max_batch]
                batch = {k: self._waiting.pop(k) for k in keys}
                try:
                    found = await self._fetch(keys)
                except Exception as exc:  # noqa: BLE001 - each caller gets the database error
                    for futures in batch.values():
                        for f in futures:
                            if not f.done():
                                f.set_exception(exc)
                    continue
                for key, futures in batch.items():
                    for f in futures:
                        if not f.done():
                            f.set_result(found.get(key))
        finally:
            self._task = None

    async def _fetch(self, keys: list[str]) -> dict[str, StateValue]:
        async with self._engine.connect() as conn:
            if conn.dialect.driver == "asyncpg":
                raw = (await conn.get_raw_connection()).driver_connection
                rows = await raw.fetch("SELECT openid, state, expires_at FROM conversation_state "
                                       "WHERE openid = ANY($1::text[])", keys)
            else:
                rows = list(await conn.execute(select(T.c.openid, T.c.state, T.c.expires_at)
                                               .where(T.c.openid.in_(keys))))
        return {r[0]: (_json_value(r[1]), as_utc(r[2])) for r in rows}  # type: ignore[misc]


def _json_value(value: Any) -> dict[str, Any]:
    """A JSON column as a dict, whether the driver decoded it or handed back text."""
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value or {})
