"""Queries for the conversation log (``messages``), including the dedup claim."""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.models import Message

T = Message.__table__


def _insert(conn: AsyncConnection) -> Any:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(T)
    if dialect == "sqlite":
        return sqlite.insert(T)
    raise RuntimeError(f"unsupported database {dialect}")


async def insert_claims(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert inbound rows; return the dedup keys that were new (the claims this batch won)."""
    if not rows:
        return set()
    stmt = (
        _insert(conn)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(T.c.dedup_key)
    )
    result = await conn.execute(stmt)
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


async def recent(conn: AsyncConnection, limit: int = 50, openid: str | None = None) -> list[dict[str, Any]]:
    """Newest log rows first (staff screen, simulator, tests)."""
    stmt = select(T).order_by(T.c.id.desc()).limit(limit)
    if openid:
        stmt = stmt.where(T.c.openid == openid)
    return [dict(r._mapping) for r in await conn.execute(stmt)]
