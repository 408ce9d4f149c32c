"""The Dialogue implementation: per-resident lock, then the first route that answers."""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import datetime
from typing import Callable, Sequence

from bot.clock import utcnow
from bot.dispatch.context import Context, StateStore
from bot.dispatch.events import ResidentEvent, Response
from bot.dispatch.router import Router

log = logging.getLogger(__name__)


class Dispatcher:
    """Routes events to feature routers. Implements :class:`bot.dispatch.events.Dialogue`."""

    def __init__(
        self,
        routers: Sequence[Router],
        state: StateStore | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.routers = list(routers)
        self._state = state
        self._clock = clock
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, openid: str) -> asyncio.Lock:
        lock = self._locks.get(openid)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[openid] = lock
        return lock

    async def handle(self, event: ResidentEvent) -> Response:
        lock = self._lock(event.openid)
        async with lock:
            ctx = Context(event.openid, self._state, self._clock)
            for router in self.routers:
                for route in router.routes:
                    if not route.matches(event):
                        continue
                    response = await route.handler(event, ctx)
                    if response is not None:
                        return response
        return Response()
