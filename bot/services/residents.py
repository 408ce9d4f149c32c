"""What the gateway-level handlers record about residents: follows, scenes, locations, receipts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import utcnow
from bot.config import OutboxConfig
from bot.services.journal import Journal
from bot.storage import outbox as outbox_q
from bot.storage import residents as q

DEFAULT_RESEND_DELAYS = OutboxConfig().receipt_delays
#: WeChat takes customer-service messages to a follower only this long after their last message (45015).
CUSTOM_WINDOW = timedelta(hours=48)


def window_known_closed(last_inbound: datetime | None, now: datetime) -> bool:
    """Whether WeChat will surely refuse a customer-service message (45015) to someone whose recorded
    ``residents.last_inbound_at`` is ``last_inbound``. The record may lag the truth by up to
    ``Journal.INBOUND_EVERY``, which is added as a margin; unknown (None) is not "closed": try, and
    let a 45015 decide."""
    return last_inbound is not None and now - last_inbound > CUSTOM_WINDOW + Journal.INBOUND_EVERY


class Residents:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = utcnow,
                 resend_delays: Sequence[timedelta] = DEFAULT_RESEND_DELAYS) -> None:
        self._engine = engine
        self._clock = clock
        self._resend_delays = tuple(resend_delays)  # outbox.receipt_retry_delays

    async def subscribed(self, openid: str, scene: str | None) -> None:
        async with self._engine.begin() as conn:
            await q.subscribe(conn, openid, scene, self._clock())

    async def unsubscribed(self, openid: str) -> None:
        async with self._engine.begin() as conn:
            await q.unsubscribe(conn, openid, self._clock())

    async def scanned(self, openid: str, scene: str) -> None:
        async with self._engine.begin() as conn:
            await q.set_scene(conn, openid, scene, self._clock())

    async def located(self, openid: str, lat: float, lon: float) -> None:
        async with self._engine.begin() as conn:
            await q.set_location(conn, openid, lat, lon, self._clock())

    async def receipt(self, msgid: str, openid: str, status: str) -> int | None:
        """Store a TEMPLATESENDJOBFINISH receipt; on "system failed" queue the message again.

        Runs on the webhook path, so it is one short transaction (an INSERT and at most one UPDATE)
        and never calls WeChat: the outbox sender sends the row again when it is due. Returns the
        outbox id put back in the queue, or None (success, user block, unknown msgid, duplicate
        receipt, re-sends used up).
        """
        now = self._clock()
        async with self._engine.begin() as conn:
            await q.add_receipt(conn, msgid, openid, status, now)
            if outbox_q.is_system_failure(status):
                return await outbox_q.resend_after_receipt(conn, msgid, openid, now, self._resend_delays)
        return None

    async def get(self, openid: str) -> dict[str, object] | None:
        async with self._engine.connect() as conn:
            return await q.get(conn, openid)
