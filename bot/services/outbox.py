"""Enqueueing outbound WeChat calls. Every outbound message leaves through this one queue.

Why a table and not an in-memory queue: a message accepted here survives a crash, and its unique
idempotency key makes enqueueing twice (a retried webhook, a resumed fan-out) a no-op. The sender
(``bot.services.sender``) drains the table with retries, backoff and a record of every attempt.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import utcnow
from bot.dispatch.events import NewsReply, Reply, TextReply
from bot.storage import outbox as queries


def custom_payload(reply: Reply) -> dict[str, Any]:
    """The body of ``message/custom/send`` (without ``touser``) for one reply."""
    if isinstance(reply, TextReply):
        return {"msgtype": "text", "text": {"content": reply.text}}
    if isinstance(reply, NewsReply):
        article = {k: v for k, v in asdict(reply).items() if v}
        return {"msgtype": "news", "news": {"articles": [article]}}
    raise TypeError(f"cannot send {type(reply).__name__}")


class Outbox:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._clock = clock
        # Called after new rows were queued (the sender's wake-up), so a late reply does not wait
        # for the sender's next poll.
        self.listeners: list[Callable[[], None]] = []

    async def enqueue_many(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert outbox rows (keys already present are skipped); returns how many were new."""
        if not rows:
            return 0
        async with self._engine.begin() as conn:
            added = await queries.insert_new(conn, rows, self._clock())
        if added:
            for listener in self.listeners:
                listener()
        return added

    async def enqueue(
        self,
        key: str,
        kind: str,
        payload: dict[str, Any],
        openid: str | None = None,
        source: str | None = None,
        not_before: datetime | None = None,
    ) -> bool:
        """Queue one call; False when ``key`` was queued before (nothing is sent twice)."""
        row: dict[str, Any] = {"idempotency_key": key, "kind": kind, "payload": payload, "openid": openid,
                               "source": source}
        if not_before is not None:
            row["next_attempt_at"] = not_before
        return await self.enqueue_many([row]) == 1

    async def enqueue_replies(self, openid: str, replies: Sequence[Reply], key: str, source: str) -> int:
        """Customer-service messages for replies that could not go out passively."""
        rows = [
            {"idempotency_key": f"{key}:{i}", "kind": "custom", "payload": custom_payload(r), "openid": openid,
             "source": source}
            for i, r in enumerate(replies)
        ]
        return await self.enqueue_many(rows)
