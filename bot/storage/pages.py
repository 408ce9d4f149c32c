"""Queries for ``reply_pages``: the unsent rest of a long reply, per resident."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import as_utc
from bot.storage.models import ReplyPage

T = ReplyPage.__table__


class PageStore:
    def __init__(self, engine: AsyncEngine, ttl: timedelta = timedelta(hours=2)) -> None:
        self._engine = engine
        self._ttl = ttl

    async def put(self, openid: str, remainder: str, now: datetime) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(T).where(T.c.openid == openid))
            await conn.execute(T.insert().values(openid=openid, remainder=remainder, expires_at=now + self._ttl))

    async def pop(self, openid: str, now: datetime) -> str | None:
        async with self._engine.begin() as conn:
            row = (await conn.execute(select(T.c.remainder, T.c.expires_at).where(T.c.openid == openid))).first()
            if row is None:
                return None
            await conn.execute(delete(T).where(T.c.openid == openid))
        return row[0] if as_utc(row[1]) > now else None
