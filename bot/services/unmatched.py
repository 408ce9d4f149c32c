"""The dialogue's review queue: questions the bot could not answer.

Why rows and not just log lines: admins are not programmers; ``resident-bot faq unmatched`` lists what
residents asked that the FAQ does not cover yet. Free text is stored with phone and ID numbers masked
(``bot.logs.mask_personal``): the list does not need them, and the full message stays in the
conversation log only. (Requests for a person are 转人工 tickets: ``bot.services.tickets``.)

Rows go through the journal's group commit (``Journal.append``) rather than a transaction of their
own: about one message in seven is unmatched, and on SQLite a separate writer stalls every dedup
claim behind its lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, Sequence

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.logs import mask_personal
from bot.storage import unmatched as q

MAX_TEXT = 1000


class RowSink(Protocol):
    """Where rows are queued for the group commit (``bot.services.journal.Journal``)."""

    def append(self, table: Table, row: dict[str, Any]) -> None: ...


class ReviewQueue:
    def __init__(self, engine: AsyncEngine, sink: RowSink | None = None) -> None:
        self._engine = engine
        self._sink = sink

    def record_unmatched(self, openid: str, text: str, normalized: str, candidates: Sequence[str],
                         score: float, version: str | None, now: datetime, reason: str = "fallback") -> None:
        """Queue the question; it is committed with the next journal batch (a few milliseconds).
        ``reason``: "fallback" (no answer) or "wrong" (the resident said the answer missed; ``candidates``
        is then the item answered)."""
        if self._sink is None:
            raise RuntimeError("ReviewQueue was built read-only (no journal)")
        self._sink.append(q.UNMATCHED, q.unmatched_row(
            openid, mask_personal(text)[:MAX_TEXT], mask_personal(normalized)[:MAX_TEXT], list(candidates)[:5],
            float(score), version, now, reason))

    async def recent_unmatched(self, limit: int = 50, since: datetime | None = None) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            return await q.recent_unmatched(conn, limit, since)
