"""The one access_token shared by every process, refreshed by one process at a time.

Why not wechatpy's own token handling: wechatpy 1.8.18 keeps the expiry in each process, refetches on
every 40001 without limit, and every refetch through ``cgi-bin/token`` invalidates the token the other
workers are still using — so N workers keep knocking each other's token out. Here the token lives in
one shared store (the ``access_tokens`` table, or Redis when configured), a lease makes sure only one
process fetches, it is refreshed a few minutes before it expires, and a rejected token is refetched
only if the store still holds that very token (compare-and-refresh): a burst of 40001s from many
concurrent calls costs exactly one refetch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Protocol

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import as_utc
from bot.storage.db import upsert_insert
from bot.storage.models import AccessToken

log = logging.getLogger(__name__)

T = AccessToken.__table__


@dataclass(frozen=True)
class StoredToken:
    """A token as every process sees it. Times are epoch seconds."""

    value: str
    expires_at: float
    fetched_at: float


class TokenUnavailable(Exception):
    """No usable token could be obtained within the time allowed (the fetcher is stuck or failing)."""

    errcode: int | None = None
    transient = True
    permanent = False


class TokenStore(Protocol):
    """Where the shared token and the refresh lease live. Implementations must make ``acquire`` atomic."""

    async def load(self) -> StoredToken | None: ...

    async def acquire(self, owner: str, now: float, ttl: float) -> bool:
        """Take the refresh lease (or extend our own); False while another owner holds it."""

    async def save(self, owner: str, token: StoredToken, now: float) -> bool:
        """Store the token and drop the lease; False if another owner took the lease meanwhile."""

    async def release(self, owner: str) -> None: ...

    async def close(self) -> None: ...


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def _ts(value: datetime | None) -> float | None:
    value = as_utc(value)
    return None if value is None else value.timestamp()


class DbTokenStore:
    """The ``access_tokens`` row for one AppID; the lease is an atomic conditional UPDATE."""

    def __init__(self, engine: AsyncEngine, appid: str) -> None:
        self._engine = engine
        self._appid = appid

    async def load(self) -> StoredToken | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(T.select().where(T.c.appid == self._appid))).first()
        if row is None or not row.token or row.expires_at is None:
            return None
        return StoredToken(row.token, _ts(row.expires_at) or 0.0, _ts(row.refreshed_at) or 0.0)

    async def acquire(self, owner: str, now: float, ttl: float) -> bool:
        async with self._engine.begin() as conn:
            insert = upsert_insert(conn, T)
            await conn.execute(insert.values(appid=self._appid).on_conflict_do_nothing(index_elements=["appid"]))
            result = await conn.execute(
                update(T)
                .where(T.c.appid == self._appid, self._lease_free(owner, now))
                .values(lease_owner=owner, lease_until=_dt(now + ttl))
            )
            return result.rowcount == 1

    async def save(self, owner: str, token: StoredToken, now: float) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(T)
                .where(T.c.appid == self._appid, self._lease_free(owner, now))
                .values(token=token.value, expires_at=_dt(token.expires_at), refreshed_at=_dt(token.fetched_at),
                        lease_owner=None, lease_until=None)
            )
            return result.rowcount == 1

    async def release(self, owner: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(T).where(T.c.appid == self._appid, T.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    async def close(self) -> None:
        """The engine belongs to the app; nothing to close here."""

    @staticmethod
    def _lease_free(owner: str, now: float) -> Any:
        return or_(T.c.lease_owner.is_(None), T.c.lease_owner == owner, T.c.lease_until < _dt(now))


_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if cur then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_SAVE = """
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[1])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTokenStore:
    """Token as JSON under one key (expiring with the token), the lease as ``SET NX PX`` under another."""

    def __init__(self, client: Any, appid: str, prefix: str = "resident-bot", owns_client: bool = False) -> None:
        self._redis = client
        self._token_key = f"{prefix}:access_token:{appid}"
        self._lease_key = f"{prefix}:access_token_lease:{appid}"
        self._owns_client = owns_client

    @classmethod
    def from_url(cls, url: str, appid: str, prefix: str = "resident-bot") -> "RedisTokenStore":
        from redis.asyncio import Redis

        return cls(Redis.from_url(url, decode_responses=True), appid, prefix, owns_client=True)

    async def load(self) -> StoredToken | None:
        raw = await self._redis.get(self._token_key)
        if not raw:
            return None
        data = json.loads(raw)
        return StoredToken(data["value"], float(data["expires_at"]), float(data.get("fetched_at", 0.0)))

    async def acquire(self, owner: str, now: float, ttl: float) -> bool:
        return bool(await self._redis.eval(_ACQUIRE, 1, self._lease_key, owner, int(ttl * 1000)))

    async def save(self, owner: str, token: StoredToken, now: float) -> bool:
        body = json.dumps({"value": token.value, "expires_at": token.expires_at, "fetched_at": token.fetched_at})
        keep_ms = max(1000, int((token.expires_at - now) * 1000))
        return bool(await self._redis.eval(_SAVE, 2, self._lease_key, self._token_key, owner, body, keep_ms))

    async def release(self, owner: str) -> None:
        await self._redis.eval(_RELEASE, 1, self._lease_key, owner)

    async def close(self) -> None:
        if self._owns_client:
            await self._redis.aclose()


# fetch(force_refresh) -> (access_token, expires_in seconds)
Fetcher = Callable[[bool], Awaitable[tuple[str, float]]]


class AccessTokenManager:
    """Hands out the shared token; refreshes it early, once per rejection burst, under the store's lease.

    Within one process an ``asyncio.Lock`` coalesces concurrent refreshes; across processes the store's
    lease does. A process that loses the lease race waits for the winner's token instead of fetching.
    """

    def __init__(
        self,
        store: TokenStore,
        fetch: Fetcher,
        *,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = 300.0,
        min_refresh_interval: float = 60.0,
        cache_seconds: float = 30.0,
        lease_ttl: float = 30.0,
        wait_timeout: float | None = None,
        poll_interval: float = 0.05,
        fetch_attempts: int = 3,
        fetch_backoff: float = 0.5,
        owner: str | None = None,
    ) -> None:
        self._store = store
        self._fetch = fetch
        self._clock = clock
        self._margin = refresh_margin
        self._min_interval = min_refresh_interval
        self._cache_seconds = cache_seconds
        self._lease_ttl = lease_ttl
        self._wait_timeout = lease_ttl + 5.0 if wait_timeout is None else wait_timeout
        self._poll = poll_interval
        self._fetch_attempts = max(1, fetch_attempts)
        self._fetch_backoff = fetch_backoff
        self.owner = owner or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock = asyncio.Lock()
        self._cached: StoredToken | None = None
        self._cached_at = 0.0
        self.fetches = 0  # tokens fetched by this process (for tests and /healthz)

    async def get(self) -> str:
        """A token that is valid for a while yet; fetches only when the shared one is (nearly) expired."""
        hit = self._from_cache()
        if hit is not None:
            return hit.value
        async with self._lock:
            hit = self._from_cache()
            if hit is not None:
                return hit.value
            stored = await self._store.load()
            if stored is not None and self._usable(stored):
                return self._remember(stored).value
            return (await self._refresh(self._usable, force=False, interim=stored)).value

    async def refresh_after_rejection(self, rejected: str) -> str:
        """WeChat said 40001/42001 for ``rejected``: refetch only if that is still the shared token."""
        async with self._lock:
            if self._cached is not None and self._cached.value != rejected and self._usable(self._cached):
                return self._cached.value

            def replaced(t: StoredToken) -> bool:
                return t.value != rejected and self._clock() < t.expires_at

            stored = await self._store.load()
            if stored is not None and replaced(stored):
                return self._remember(stored).value
            log.info("access_token rejected; refreshing it (force)")
            return (await self._refresh(replaced, force=True)).value

    async def close(self) -> None:
        await self._store.close()

    def _from_cache(self) -> StoredToken | None:
        c = self._cached
        if c is None or time.monotonic() - self._cached_at > self._cache_seconds or not self._usable(c):
            return None
        return c

    def _remember(self, token: StoredToken) -> StoredToken:
        self._cached, self._cached_at = token, time.monotonic()
        return token

    def _usable(self, token: StoredToken) -> bool:
        """Valid beyond the safety margin — or just fetched (WeChat may hand back a token near its end)."""
        now = self._clock()
        if now >= token.expires_at:
            return False
        return now < token.expires_at - self._margin or now - token.fetched_at < self._min_interval

    async def _refresh(self, accept: Callable[[StoredToken], bool], force: bool,
                       interim: StoredToken | None = None) -> StoredToken:
        """Fetch under the lease, or wait for whoever holds it; bounded by ``wait_timeout``.

        ``interim`` is the token due for an early refresh: while another process renews it, it is still
        valid, so we use it rather than wait.
        """
        deadline = time.monotonic() + self._wait_timeout
        while True:
            if await self._store.acquire(self.owner, self._clock(), self._lease_ttl):
                return await self._fetch_under_lease(accept, force)
            if interim is not None and self._clock() < interim.expires_at - 30:
                return interim
            await asyncio.sleep(self._poll)
            stored = await self._store.load()
            if stored is not None and accept(stored):
                return self._remember(stored)
            if time.monotonic() > deadline:
                raise TokenUnavailable("access_token: timed out waiting for another process to refresh it")

    async def _fetch_under_lease(self, accept: Callable[[StoredToken], bool], force: bool) -> StoredToken:
        saved = False
        try:
            stored = await self._store.load()
            if stored is not None and accept(stored):  # saved by another process while we took the lease
                return self._remember(stored)
            value, expires_in = await self._fetch_with_retries(force)
            now = self._clock()
            token = StoredToken(value, now + float(expires_in), now)
            saved = await self._store.save(self.owner, token, now)
            if not saved:
                log.warning("access_token lease was lost while fetching; the token is used but not shared")
            return self._remember(token)
        finally:
            if not saved:
                await self._store.release(self.owner)

    async def _fetch_with_retries(self, force: bool) -> tuple[str, float]:
        """A few tries for network trouble and 'system busy'; credential errors fail at once."""
        for attempt in range(1, self._fetch_attempts + 1):
            try:
                self.fetches += 1
                return await self._fetch(force)
            except Exception as exc:  # noqa: BLE001 - classified just below
                if not getattr(exc, "transient", False) or attempt == self._fetch_attempts:
                    raise
                log.warning("access_token fetch failed (%s), retrying", type(exc).__name__)
                await asyncio.sleep(self._fetch_backoff * attempt)
        raise AssertionError("unreachable")
