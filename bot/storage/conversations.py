"""Conversation state per resident (``conversation_state``): the dispatcher's StateStore."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import as_utc
from bot.storage.models import ConversationState

T = ConversationState.__table__


class ConversationStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def load(self, openid: str, now: datetime) -> dict[str, Any]:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(T.c.state, T.c.expires_at).where(T.c.openid == openid))).first()
        if row is None or as_utc(row[1]) <= now:  # type: ignore[operator]
            return {}
        return dict(row[0] or {})

    async def save(self, openid: str, state: dict[str, Any], expires_at: datetime, now: datetime) -> None:
        async with self._engine.begin() as conn:
            ins = (postgresql.insert(T) if conn.dialect.name == "postgresql" else sqlite.insert(T)).values(
                openid=openid, state=state, expires_at=expires_at, updated_at=now
            )
            await conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["openid"],
                    set_={"state": ins.excluded.state, "expires_at": ins.excluded.expires_at,
                          "updated_at": ins.excluded.updated_at},
                )
            )

    async def clear(self, openid: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(T).where(T.c.openid == openid))
