"""Per-event context handed to handlers: who, when, and their conversation state."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Protocol

from bot.clock import utcnow


class StateStore(Protocol):
    """Where conversation state lives (``bot.storage.conversations`` in production)."""

    async def load(self, openid: str, now: datetime) -> dict[str, Any]: ...

    async def save(self, openid: str, state: dict[str, Any], expires_at: datetime, now: datetime) -> None: ...

    async def clear(self, openid: str) -> None: ...


class Context:
    """State is loaded lazily: most events (a FAQ question) never pay for a state read."""

    def __init__(self, openid: str, store: StateStore | None, clock: Callable[[], datetime] = utcnow) -> None:
        self.openid = openid
        self.now = clock()
        self._store = store
        self._state: dict[str, Any] | None = None

    async def state(self) -> dict[str, Any]:
        """The resident's current state; an empty dict when none or expired."""
        if self._state is None:
            self._state = await self._store.load(self.openid, self.now) if self._store else {}
        return dict(self._state)

    async def save_state(self, state: dict[str, Any], ttl_seconds: int = 1800) -> None:
        from datetime import timedelta

        self._state = dict(state)
        if self._store:
            await self._store.save(self.openid, self._state, self.now + timedelta(seconds=ttl_seconds), self.now)

    async def clear_state(self) -> None:
        self._state = {}
        if self._store:
            await self._store.clear(self.openid)
