"""The dialogue's review queue: questions the bot could not answer.

Why rows and not just log lines: admins are not programmers; ``resident-bot faq unmatched`` lists what
residents asked that the FAQ does not cover yet. Free text is stored with phone and ID numbers masked
(``bot.logs.mask_personal``): the list does not need them, and the full message stays in the
conversation log only. (Requests for a person are 转人工 tickets: ``bot.services.tickets``.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.logs import mask_personal
from bot.storage import unmatched as q

MAX_TEXT = 1000


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
