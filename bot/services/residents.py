"""What the gateway-level handlers record about residents: follows, scenes, locations, receipts."""

from __future__ import annotations

from datetime import datetime
from typing import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import utcnow
from bot.storage import residents as q


class Residents:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._clock = clock

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

    async def receipt(self, msgid: str, openid: str, status: str) -> None:
        async with self._engine.begin() as conn:
            await q.add_receipt(conn, msgid, openid, status, self._clock())

    async def get(self, openid: str) -> dict[str, object] | None:
        async with self._engine.connect() as conn:
            return await q.get(conn, openid)
