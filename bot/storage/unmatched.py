"""Queries for the dialogue's review queues: unmatched questions and 转人工 hand-offs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.models import Handoff, UnmatchedQuestion

UNMATCHED = UnmatchedQuestion.__table__
HANDOFFS = Handoff.__table__


async def add_unmatched(conn: AsyncConnection, openid: str, text: str, normalized: str,
                        candidates: Sequence[str], score: float, version: str | None, now: datetime) -> int:
    result = await conn.execute(UNMATCHED.insert().values(
        openid=openid, text=text, normalized=normalized, candidates=list(candidates), score=score,
        knowledge_version=version, created_at=now))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def recent_unmatched(conn: AsyncConnection, limit: int, since: datetime | None = None) -> list[dict[str, Any]]:
    """Newest first."""
    query = select(UNMATCHED).order_by(UNMATCHED.c.created_at.desc(), UNMATCHED.c.id.desc()).limit(limit)
    if since is not None:
        query = query.where(UNMATCHED.c.created_at >= since)
    return [dict(row._mapping) for row in await conn.execute(query)]


async def open_handoff(conn: AsyncConnection, openid: str) -> dict[str, Any] | None:
    """The resident's open hand-off, if any (so asking twice does not create two rows)."""
    row = (await conn.execute(select(HANDOFFS).where(HANDOFFS.c.openid == openid, HANDOFFS.c.status == "open")
                              .order_by(HANDOFFS.c.id.desc()).limit(1))).first()
    return None if row is None else dict(row._mapping)


async def add_handoff(conn: AsyncConnection, openid: str, text: str, item: str | None, now: datetime) -> int:
    result = await conn.execute(HANDOFFS.insert().values(openid=openid, text=text, item=item, status="open",
                                                         created_at=now))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def list_handoffs(conn: AsyncConnection, status: str | None, limit: int) -> list[dict[str, Any]]:
    """Oldest first: whoever has waited longest is called back first."""
    query = select(HANDOFFS).order_by(HANDOFFS.c.created_at, HANDOFFS.c.id).limit(limit)
    if status:
        query = query.where(HANDOFFS.c.status == status)
    return [dict(row._mapping) for row in await conn.execute(query)]


async def close_handoff(conn: AsyncConnection, handoff_id: int, now: datetime) -> bool:
    result = await conn.execute(update(HANDOFFS).where(HANDOFFS.c.id == handoff_id, HANDOFFS.c.status == "open")
                                .values(status="done", closed_at=now))
    return bool(result.rowcount)
