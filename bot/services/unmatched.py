"""The dialogue's review queues: questions the bot could not answer, and requests for a person.

Why rows and not just log lines: admins are not programmers; ``resident-bot faq unmatched`` lists what
residents asked that the FAQ does not cover yet, and ``resident-bot faq handoffs`` lists who is waiting
for a call back. Free text is stored with phone and ID numbers masked (``bot.logs.mask_personal``):
neither list needs them, and the full message stays in the conversation log only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.logs import mask_personal
from bot.storage import unmatched as q

MAX_TEXT = 1000


@dataclass(frozen=True)
class HandoffResult:
    """``created`` is False when the resident already had an open request (asked twice)."""

    id: int
    created: bool


class ReviewQueue:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record_unmatched(self, openid: str, text: str, normalized: str, candidates: Sequence[str],
                               score: float, version: str | None, now: datetime) -> int:
        async with self._engine.begin() as conn:
            return await q.add_unmatched(conn, openid, mask_personal(text)[:MAX_TEXT],
                                         mask_personal(normalized)[:MAX_TEXT], list(candidates)[:5],
                                         float(score), version, now)

    async def recent_unmatched(self, limit: int = 50, since: datetime | None = None) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            return await q.recent_unmatched(conn, limit, since)

    async def request_handoff(self, openid: str, text: str, item: str | None, now: datetime) -> HandoffResult:
        """Flag the conversation for staff, once per open request."""
        async with self._engine.begin() as conn:
            existing = await q.open_handoff(conn, openid)
            if existing is not None:
                return HandoffResult(int(existing["id"]), created=False)
            ident = await q.add_handoff(conn, openid, mask_personal(text)[:MAX_TEXT], item, now)
            return HandoffResult(ident, created=True)

    async def handoffs(self, status: str | None = "open", limit: int = 100) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            return await q.list_handoffs(conn, status, limit)

    async def close_handoff(self, handoff_id: int, now: datetime) -> bool:
        async with self._engine.begin() as conn:
            return await q.close_handoff(conn, handoff_id, now)
