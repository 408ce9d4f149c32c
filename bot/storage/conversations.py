"""Conversation state per resident (``conversation_state``): the dispatcher's StateStore.

Writes go through the journal's group commit (one transaction for many residents' updates).
Reads go to the database, except in a single-process deployment, where this process sees every
write and can serve reads from its own cache (``authoritative_cache``); with several worker
processes a resident's next message may land on another worker, so the cache is not used.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import as_utc
from bot.services.journal import Journal
from bot.storage.models import ConversationState

T = ConversationState.__table__
_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


class ConversationStore:
    def __init__(self, engine: AsyncEngine, journal: Journal, authoritative_cache: bool = False,
                 cache_size: int = 100_000) -> None:
        self._engine = engine
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
            async with self._engine.connect() as conn:
                row = (await conn.execute(select(T.c.state, T.c.expires_at).where(T.c.openid == openid))).first()
            if row is None:
                self._remember(openid, {}, _EPOCH)
                return {}
            cached = (dict(row[0] or {}), as_utc(row[1]))  # type: ignore[assignment]
            self._remember(openid, *cached)  # type: ignore[arg-type]
        state, expires_at = cached
        return dict(state) if expires_at > now else {}

    async def save(self, openid: str, state: dict[str, Any], expires_at: datetime, now: datetime) -> None:
        """Persist through the group commit. With an authoritative cache this process is the only
        reader, so the reply need not wait for the commit; otherwise it waits, so that any worker
        reads the new state for the resident's next message."""
        self._remember(openid, dict(state), expires_at)
        await self._journal.save_state((openid, dict(state), expires_at, now), wait=not self._cache_on)

    async def clear(self, openid: str) -> None:
        """An empty state that is already expired: cheaper than a DELETE through the group commit."""
        await self.save(openid, {}, _EPOCH, _EPOCH)
