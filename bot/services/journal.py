"""The conversation log with group commit: many webhook requests, one transaction.

Why: the gateway must persist a dedup claim before it handles a message (so a WeChat retry landing
on another worker process is recognised) and log every reply, at thousands of messages per second.
One INSERT per message would cap throughput at what the database can commit per second. Instead a
single writer task drains everything queued since its last transaction into one multi-row INSERT
(claims report back which keys were new through futures), together with the conversation-state
upserts and the dialogue's other per-message rows (:meth:`Journal.append`), and — at most once per
openid per :attr:`Journal.INBOUND_EVERY` — when that openid last wrote to us (:meth:`Journal.inbound`,
for WeChat's 48-hour customer-service window). Under load batches grow; idle, a lone message commits
at once — no timer adds latency.

When the database is unreachable, claims fail fast with :class:`JournalUnavailable` (the gateway then
answers anyway, deduplicating in memory) and every row is kept in memory and written once the
database is back: nothing is lost, up to ``max_buffer`` rows.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage import messages as queries

log = logging.getLogger(__name__)


class JournalUnavailable(Exception):
    """The database could not be reached for a claim."""


@dataclass
class _Claim:
    row: dict[str, Any]
    future: asyncio.Future[bool]


class Journal:
    #: ``residents.last_inbound_at`` is written at most once per openid per this long by each process,
    #: so the stored time may be this much older than the openid's real last message: whoever decides
    #: from it that the 48-hour window is closed adds this as a margin.
    INBOUND_EVERY = timedelta(minutes=10)
    #: Openids whose last noted time a process remembers; past this it forgets them all (the only cost:
    #: one more upsert row for each openid that writes again).
    INBOUND_MEMORY = 100_000

    def __init__(
        self, engine: AsyncEngine, writer: queries.BatchWriter | None = None, max_batch: int = 400,
        max_buffer: int = 200_000,
    ) -> None:
        self._engine = engine
        self._writer = writer or queries.BatchWriter(engine)
        self._max_batch = max_batch
        self._max_buffer = max_buffer
        self._claims: list[_Claim] = []
        self._rows: list[dict[str, Any]] = []
        # Rows of other append-only tables written by the dialogue (e.g. unmatched questions).
        self._appended: list[queries.Appended] = []
        # Conversation-state upserts, coalesced per resident (only the newest state matters).
        self._states: dict[str, queries.StateRow] = {}
        # Last-inbound times to write (newest per openid), and what this process last queued per openid.
        self._inbound: dict[str, datetime] = {}
        self._inbound_noted: dict[str, datetime] = {}
        self._state_waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._failing_since: float | None = None
        self.dropped = 0

    # --- producer side ----------------------------------------------------------------------------

    async def claim(self, row: dict[str, Any]) -> bool:
        """Persist an inbound row; True when this call was first for its ``dedup_key``."""
        if self._failing_since is not None:
            # Fail fast during an outage; the row is still written once the database is back.
            self.record(row)
            raise JournalUnavailable("database unavailable")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._claims.append(_Claim(row, future))
        self._kick()
        return await future

    def record(self, row: dict[str, Any]) -> None:
        """Queue a row that needs no answer (a reply, an event without dedup)."""
        if self._room_for("messages"):
            self._rows.append(row)
            self._kick()

    def append(self, table: Table, row: dict[str, Any]) -> None:
        """Queue a row for another append-only table, written in the next batch.

        Why: on SQLite a second writer connection takes the write lock between two journal batches
        and makes every claim queue behind it; per-message rows of other tables ride along instead.
        The row is durable within milliseconds and survives an outage like the log rows.
        """
        if self._room_for(table.name):
            self._appended.append((table, row))
            self._kick()

    async def save_state(self, row: queries.StateRow, wait: bool = True) -> None:
        """Queue a conversation-state upsert; with ``wait``, until it is committed (or kept for retry).

        Waiting keeps the state durable before the reply leaves, so a resident's next message is
        read correctly by any worker; the group commit keeps that cheap.
        """
        self._states[row[0]] = row
        self._kick()
        if wait:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._state_waiters.append(future)
            await future

    def inbound(self, openid: str, at: datetime) -> None:
        """``openid`` just wrote to us (a message, menu click, follow or scan — what opens WeChat's
        48-hour customer-service window): note ``at`` for ``residents.last_inbound_at``.

        On the webhook's path for every such message, so it costs a dict lookup and a comparison; no
        query and no wait. Only the first message per openid per :attr:`INBOUND_EVERY` adds a row to
        the next batch (one upsert), written with the claims and log rows it travels with.
        """
        last = self._inbound_noted.get(openid)
        if last is not None and at - last < self.INBOUND_EVERY:
            return
        if len(self._inbound_noted) >= self.INBOUND_MEMORY:
            self._inbound_noted.clear()
        self._inbound_noted[openid] = at
        self._inbound[openid] = at
        self._kick()

    def _room_for(self, table: str) -> bool:
        """False (and the row counted as dropped) when ``max_buffer`` rows already wait, e.g. in an outage."""
        if len(self._rows) + len(self._claims) + len(self._appended) < self._max_buffer:
            return True
        self.dropped += 1
        log.error("journal buffer full; %s row dropped", table, extra={"fields": {"dropped": self.dropped}})
        return False

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    # --- writer side ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="journal-writer")

    async def stop(self) -> None:
        """Flush what is queued (best effort) and stop the writer."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self.flush(), timeout=10)
        except asyncio.TimeoutError:
            log.error("conversation log not fully flushed at shutdown", extra={"fields": {"left": len(self._rows)}})
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None
        self._writer.close()

    async def flush(self) -> None:
        """Wait until everything queued so far is written (tests, shutdown)."""
        while (self._claims or self._rows or self._states or self._appended or self._inbound
               or not self._idle.is_set()):
            self._wake.set()
            await asyncio.sleep(0.005)

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._claims or self._rows or self._states or self._appended or self._inbound:
                claims = self._claims[: self._max_batch]
                del self._claims[: len(claims)]
                rows = self._rows[: self._max_batch * 2]
                del self._rows[: len(rows)]
                appended = self._appended[: self._max_batch]
                del self._appended[: len(appended)]
                states, self._states = self._states, {}
                inbound, self._inbound = self._inbound, {}
                waiters, self._state_waiters = self._state_waiters, []
                ok = await self._write(claims, rows, list(states.values()), appended, sorted(inbound.items()))
                for waiter in waiters:  # a failed state write is retried below; nobody is blocked by it
                    if not waiter.done():
                        waiter.set_result(None)
                if ok:
                    backoff = 0.05
                    continue
                self._rows[:0] = rows
                self._appended[:0] = appended
                for openid, row in states.items():
                    self._states.setdefault(openid, row)
                for openid, at in inbound.items():
                    if openid not in self._inbound or self._inbound[openid] < at:
                        self._inbound[openid] = at
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            self._idle.set()

    async def _write(self, claims: list[_Claim], rows: list[dict[str, Any]], states: list[queries.StateRow],
                     appended: list[queries.Appended], inbound: list[queries.InboundRow]) -> bool:
        """One transaction for the batch. On failure, claims are failed and their rows kept."""
        unique: dict[str, _Claim] = {}
        for c in claims:
            unique.setdefault(c.row["dedup_key"], c)
        try:
            won = await self._writer.write([c.row for c in unique.values()], rows, states, appended, inbound)
        except Exception as exc:  # noqa: BLE001 - any database failure is handled the same way
            if self._failing_since is None:
                self._failing_since = asyncio.get_running_loop().time()
                log.error("conversation log write failed: %s", type(exc).__name__)
            for c in claims:
                self._rows.append(c.row)
                if not c.future.done():
                    c.future.set_exception(JournalUnavailable(type(exc).__name__))
            return False
        if self._failing_since is not None:
            log.warning("conversation log writes recovered")
            self._failing_since = None
        for c in claims:
            if not c.future.done():
                c.future.set_result(unique.get(c.row["dedup_key"]) is c and c.row["dedup_key"] in won)
        return True

    async def find_reply(self, dedup_key: str) -> tuple[list[Any] | None, str | None] | None:
        async with self._engine.connect() as conn:
            return await queries.find_reply(conn, dedup_key)

