"""The outbox sender: drains the ``outbox`` table through the WeChat API, with retries and a record.

Why this shape:
- rows are *claimed* with a lease (``bot.storage.outbox.claim_due``), so any number of processes can
  run a sender and each row is still sent once; a sender that dies just lets its lease run out;
- each try is written down (an ``outbox_attempts`` row) and the outbox row keeps the latest status,
  errcode and error — who, what, when, result;
- errors WeChat will repeat forever (45015 outside the 48-hour window, 43004 not following, 40003,
  45047, …) are recorded and not retried; 43004 also marks the resident unsubscribed so nobody keeps
  sending; everything else is retried with exponential backoff up to ``outbox.max_attempts``;
- a customer-service row that carries a template to fall back on (``payload["fallback"]``, e.g. a
  relay to a grid worker) and is refused with 45015 queues that template as a row of its own, in the
  transaction that records the refusal: the recipient still hears of it, once;
- rows for one resident go out in order: a failed part holds back the later parts of the same kind;
- a template message whose receipt says "failed: system failed" is put back in the queue by the
  receipt itself (``bot.storage.outbox.resend_after_receipt``, one UPDATE on the webhook path) and
  sent again here when due, up to ``outbox.receipt_retry_delays``; "failed:user block" never is.

Results are written by group commit: each send, once WeChat has answered, hands its result to
:meth:`OutboxSender._record` and waits until it is committed; whichever send finds no write in
progress writes everything handed over so far in one transaction (no timer: a lone send commits at
once). Exactly-once is unchanged. The window in which a crash causes a double send is, as before,
"WeChat accepted the message, our commit did not happen": the row keeps its lease, and when the
lease lapses another sender sends it again. Each send coroutine still has at most one result
awaiting commit and does not start its next row before that commit, so the rows inside the window
at any moment are at most the sends in flight (≤ ``batch_size``) — the same bound as one commit
per send, where those sends queued for the database one by one. What changes is only how long a
result waits (up to two short batch commits instead of its own commit behind the others').
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import utcnow
from bot.config import OutboxConfig
from bot.storage import outbox as queries
from bot.storage.outbox import FALLBACK, OUTSIDE_WINDOW, Result, fallback_key
from bot.storage.residents import mark_unsubscribed_by_error
from bot.wechat.api import WeChatApi, WeChatApiError, build_wechat_api

log = logging.getLogger(__name__)

NOT_FOLLOWING = 43004


class PayloadError(Exception):
    """The row cannot be sent as queued (unknown kind, missing field): retrying will not help."""


class RateLimiter:
    """Spaces calls evenly at ``rate`` per second (per sender). Burst-free on purpose: WeChat counts per second."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if not self._interval:
            return
        async with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self._interval
        if wait > 0:
            await asyncio.sleep(wait)


@dataclass(frozen=True)
class Outcome:
    status: str  # sent / retry / failed
    errcode: int | None = None
    error: str | None = None
    msgid: str | None = None
    next_at: datetime | None = None


async def deliver(api: WeChatApi, kind: str, openid: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    """One outbox row → one WeChat call. Payload shapes are those ``bot.services.outbox`` queues."""
    if kind == "menu":
        return await api.create_menu(payload)
    if not openid:
        raise PayloadError(f"{kind} message without openid")
    try:
        if kind == "custom":
            if FALLBACK in payload:  # ours, not WeChat's
                payload = {k: v for k, v in payload.items() if k != FALLBACK}
            return await api.send_custom(openid, payload)
        if kind == "template":
            return await api.send_template(openid, payload["template_id"], payload["data"], payload.get("url"))
        if kind == "subscribe":
            return await api.send_subscribe(openid, payload["template_id"], payload["data"], payload.get("page"))
    except KeyError as exc:
        raise PayloadError(f"{kind} payload lacks {exc.args[0]!r}") from None
    raise PayloadError(f"unknown outbox kind {kind!r}")


class OutboxSender:
    """Claims due outbox rows, sends them, records the result. ``run_once`` is one round (for tests)."""

    def __init__(
        self,
        engine: AsyncEngine,
        api: WeChatApi,
        config: OutboxConfig,
        *,
        clock: Callable[[], datetime] = utcnow,
        owner: str | None = None,
        lease_seconds: float | None = None,
        rate_per_second: float | None = None,
    ) -> None:
        self._engine = engine
        self._api = api
        self._config = config
        self._clock = clock
        self.owner = owner or f"sender-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        rate = config.rate_per_second if rate_per_second is None else rate_per_second
        self._limiter = RateLimiter(rate)
        # The lease must outlast a whole batch at the configured rate, plus one slow call.
        batch_time = config.batch_size / rate if rate > 0 else 0.0
        self._lease = timedelta(seconds=lease_seconds if lease_seconds is not None else 2 * batch_time + 60.0)
        self._resend_delays = config.receipt_delays
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        # Group commit of results: handed over, not yet written (see the module docstring).
        self._unrecorded: list[_Unrecorded] = []
        self._writing = False

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Run rounds in the background until :meth:`stop`; returns the task (for ``Services.background``)."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self._loop(), name=f"outbox-sender-{self.owner}")
        return self._task

    def wake(self) -> None:
        """Something was just queued: start the next round now instead of after ``poll_interval``."""
        self._wake.set()

    async def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._task, timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        self._task = None

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                sent = await self.run_once()
            except Exception:  # noqa: BLE001 - the loop must survive a database hiccup
                log.exception("outbox round failed")
                sent = 0
            if sent or self._stopping:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._config.poll_interval)
            except asyncio.TimeoutError:
                pass

    # ---- one round ----------------------------------------------------------------------------

    async def run_once(self, ids: Sequence[int] | None = None) -> int:
        """Claim due rows (optionally only ``ids``), send them; returns how many were claimed."""
        now = self._clock()
        async with self._engine.begin() as conn:
            rows = await queries.claim_due(conn, self.owner, now, now + self._lease, self._config.batch_size, ids)
        if not rows:
            return 0
        await asyncio.gather(*(self._send_in_order(group) for group in self._groups(rows)))
        return len(rows)

    @staticmethod
    def _groups(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Rows of one resident and kind, in queue order; each group is sent one after the other."""
        def key(r: dict[str, Any]) -> tuple[str, str]:
            return (r["openid"] or f"#{r['id']}", r["kind"])

        ordered = sorted(rows, key=lambda r: (key(r), r["next_attempt_at"], r["id"]))
        return [list(g) for _, g in groupby(ordered, key=key)]

    async def _send_in_order(self, group: list[dict[str, Any]]) -> None:
        for i, row in enumerate(group):
            if self._clock() >= row["lease_until"] - timedelta(seconds=5):
                await self._release(group[i:], None)  # lease nearly gone: another sender may take them
                return
            try:
                outcome = await self._send_one(row)
            except asyncio.CancelledError:
                # Shutting down: hand back the rows not yet tried so a restart need not wait for the
                # lease. The row in flight keeps its lease — it may have reached WeChat already.
                await self._release(group[i + 1:], None)
                raise
            if outcome.status == "retry":
                await self._release(group[i + 1:], outcome.next_at)
                return

    async def _release(self, rows: list[dict[str, Any]], not_before: datetime | None) -> None:
        if rows:
            async with self._engine.begin() as conn:
                await queries.release(conn, [r["id"] for r in rows], self.owner, not_before)

    async def _send_one(self, row: dict[str, Any]) -> Outcome:
        await self._limiter.acquire()
        started = time.monotonic()
        try:
            answer = await deliver(self._api, row["kind"], row["openid"], row["payload"])
            msgid = answer.get("msgid")
            outcome = Outcome("sent", msgid=None if msgid is None else str(msgid))
        except WeChatApiError as exc:
            outcome = self._after_error(row, exc.errcode, exc.errmsg or exc.endpoint, permanent=exc.permanent)
        except PayloadError as exc:
            outcome = Outcome("failed", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - e.g. TokenUnavailable, a database error: try again later
            outcome = self._after_error(row, None, type(exc).__name__, permanent=False)
        result = Result(id=row["id"], status=outcome.status, at=self._clock(),
                        duration_ms=(time.monotonic() - started) * 1000, errcode=outcome.errcode,
                        error=outcome.error, msgid=outcome.msgid, next_at=outcome.next_at)
        await self._record(_Unrecorded(result, row["openid"], row["kind"], self._fallback(row, outcome)))
        if outcome.status != "sent":
            log.info("outbox %s (%s) %s: errcode=%s %s", row["id"], row["kind"], outcome.status, outcome.errcode,
                     outcome.error)
        return outcome

    @staticmethod
    def _fallback(row: dict[str, Any], outcome: Outcome) -> dict[str, Any] | None:
        """The template row to queue for a customer-service row WeChat refused with 45015 (and only
        then: other failures keep their retry/fail path), when the row carries one."""
        if outcome.errcode != OUTSIDE_WINDOW or row["kind"] != "custom":
            return None
        template = (row["payload"] or {}).get(FALLBACK)
        if not template:
            return None
        return {"idempotency_key": fallback_key(row["idempotency_key"]), "kind": "template", "payload": template,
                "openid": row["openid"], "source": row["source"]}

    def _after_error(self, row: dict[str, Any], errcode: int | None, error: str, permanent: bool) -> Outcome:
        attempts = row["attempts"] + 1
        if permanent or attempts >= self._config.max_attempts:
            return Outcome("failed", errcode=errcode, error=error)
        return Outcome("retry", errcode=errcode, error=error, next_at=self._clock() + self.backoff(attempts))

    def backoff(self, attempts: int) -> timedelta:
        """Delay after the ``attempts``-th failed try: base, 2×base, 4×base … capped at backoff_max."""
        seconds = min(self._config.backoff_max, self._config.backoff_base * 2 ** (attempts - 1))
        return timedelta(seconds=seconds)

    # ---- recording results (group commit) --------------------------------------------------------

    async def _record(self, item: "_Unrecorded") -> None:
        """Hand a result over and return once it is committed (written by us or by a send before us)."""
        item.written = asyncio.get_running_loop().create_future()
        self._unrecorded.append(item)
        if not self._writing:
            try:
                await self._write_all()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a later batch (others' results) may be what failed
                pass  # our own outcome is in ``item.written``: raised just below if it was not written
        await item.written

    async def _write_all(self) -> None:
        """Write batches until nothing is left; a failed batch fails every waiting send with it."""
        self._writing = True
        try:
            while self._unrecorded:
                batch, self._unrecorded = self._unrecorded, []
                try:
                    await self._write(batch)
                except BaseException as exc:
                    for item in batch + self._unrecorded:
                        _fail(item.written, exc)
                    self._unrecorded = []
                    raise
                for item in batch:
                    if not item.written.done():
                        item.written.set_result(None)
        finally:
            self._writing = False

    async def _write(self, batch: list["_Unrecorded"]) -> None:
        now = self._clock()
        results = [item.result for item in batch]
        async with self._engine.begin() as conn:
            updated = await queries.record_results(conn, self.owner, results)
            for item in batch:
                if item.result.errcode == NOT_FOLLOWING and item.openid:
                    await mark_unsubscribed_by_error(conn, item.openid, now)
            templates = [i.result.id for i in batch if i.kind == "template" and i.result.status == "sent"]
            resent = await queries.resend_if_receipt_came_first(conn, templates, now, self._resend_delays)
            fallbacks = await queries.insert_new(conn, [i.fallback for i in batch if i.fallback], now)
        if fallbacks:
            log.info("outbox: %d customer-service message(s) refused with 45015 go as template instead", fallbacks)
            self.wake()
        if updated is not None and updated < len(batch):
            log.warning("outbox: %d of %d results not recorded: lease lost", len(batch) - updated, len(batch))
        if resent:
            log.info("outbox %s: receipt said system failed before the send was recorded; re-send scheduled",
                     ", ".join(map(str, resent)))


@dataclass
class _Unrecorded:
    """One result waiting for the group commit, with what the commit needs besides the result."""

    result: Result
    openid: str | None
    kind: str
    fallback: dict[str, Any] | None = None  # the template row to queue with this result (45015)
    written: asyncio.Future[None] = field(init=False)


def _fail(future: asyncio.Future[None], exc: BaseException) -> None:
    if future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)


@dataclass
class Outbound:
    """What :func:`setup_outbound` built: the API (for handlers and commands) and the sender."""

    api: WeChatApi
    sender: OutboxSender


def setup_outbound(services: Any, start: bool = True) -> Outbound | None:
    """Build the WeChat API and start the outbox sender for ``services`` (called from ``build_services``).

    Registers the sender task in ``services.background`` and the API's close in ``services.closers``.
    Every worker may run a sender (claims are lease-safe); each gets ``rate_per_second / workers``.
    Returns None in sandbox mode without ``wechat.api_base_url`` (tests that never serve the mock): the
    real api.weixin.qq.com must never be called from a sandbox.
    """
    config = services.config
    if config.sandbox_mode and not config.wechat.api_base_url:
        log.warning("sandbox without wechat.api_base_url: outbound WeChat calls are off")
        return None
    api = build_wechat_api(config, services.engine)
    rate = config.outbox.rate_per_second / max(1, config.server.workers)
    lease = 2 * config.outbox.batch_size / rate + 4 * config.wechat.api_timeout + 10 if rate > 0 else None
    sender = OutboxSender(services.engine, api, config.outbox, rate_per_second=rate, lease_seconds=lease)
    services.closers.append(api.close)
    if start:
        services.background.append(sender.start())
    return Outbound(api=api, sender=sender)
