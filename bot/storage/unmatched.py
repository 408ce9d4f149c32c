"""Queries for the dialogue's review queue: unmatched questions.

(转人工 requests are tickets: ``bot.storage.tickets``; migration 0007 dropped the old hand-off table.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.models import UnmatchedQuestion

UNMATCHED = UnmatchedQuestion.__table__


def unmatched_row(openid: str, text: str, normalized: str, candidates: Sequence[str], score: float,
                  version: str | None, now: datetime, reason: str = "fallback") -> dict[str, Any]:
    """A row of ``unmatched_questions`` (written by the journal's group commit)."""
    return {"openid": openid, "text": text, "normalized": normalized, "candidates": list(candidates),
            "score": score, "knowledge_version": version, "created_at": now, "reason": reason}


async def recent_unmatched(conn: AsyncConnection, limit: int, since: datetime | None = None) -> list[dict[str, Any]]:
    """Newest first."""
    query = select(UNMATCHED).order_by(UNMATCHED.c.created_at.desc(), UNMATCHED.c.id.desc()).limit(limit)
    if since is not None:
        query = query.where(UNMATCHED.c.created_at >= since)
    return [dict(row._mapping) for row in await conn.execute(query)]
