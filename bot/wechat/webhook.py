"""The WeChat webhook: verification, signed (and encrypted) messages, dedup and the 5-second rule.

Flow of one POST: size limit → timestamp window → signature (``signature`` in plain mode,
``msg_signature`` over the ciphertext in safe/compatible mode) → decrypt → parse (expat, DTDs refused) → typed
event → dedup claim → dialogue under a deadline → passive reply (XML, encrypted when the request was).

WeChat retries a POST after 5 s without answer, up to three times. Two layers make a retry harmless:
an in-process map of in-flight/recent answers (concurrent duplicates wait for the first and get the
same reply) and the conversation log's unique ``dedup_key`` (a retry landing on another worker process
loses the claim and reads the stored reply). When the dialogue is not done by ``reply_deadline``
(~4 s) the request is answered ``success`` and the replies go out later as customer-service
messages through the outbox — the aiogram ``feed_webhook_update`` pattern.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Protocol, Sequence

from aiohttp import web

from bot.config import WeChatConfig
from bot.dispatch.events import Dialogue, NewsReply, Reply, ResidentEvent, Response, TextMessage, TextReply
from bot.logs import request_id
from bot.wechat import limits
from bot.wechat.codec import (
    Cipher,
    CodecError,
    SignatureError,
    check_signature,
    parse_fields,
    render_reply,
    to_event,
)

log = logging.getLogger(__name__)

SORRY = "抱歉，系统正忙，请稍后再试。如有急事请拨打社区电话。"
#: What opens WeChat's 48-hour customer-service window: a message of any type, a menu click, a follow,
#: a scan. Not an unsubscribe, a menu link (view), the periodic location report or a template receipt.
OPENS_WINDOW = frozenset({"text", "voice", "image", "video", "location", "link", "subscribe", "scan", "click"})


_PROCESS_TAG = f"{os.getpid() & 0xFFFF:04x}{secrets.randbits(16):04x}"
_request_numbers = itertools.count(1)


def next_request_id() -> str:
    """Unique per process and cheap (uuid4 costs a urandom call per request)."""
    return f"{_PROCESS_TAG}{next(_request_numbers):x}"


class JournalPort(Protocol):
    async def claim(self, row: dict[str, Any]) -> bool: ...

    def record(self, row: dict[str, Any]) -> None: ...

    def inbound(self, openid: str, at: datetime) -> None: ...

    async def find_reply(self, dedup_key: str) -> tuple[list[Any] | None, str | None] | None: ...


class LateSenderPort(Protocol):
    async def enqueue_replies(self, openid: str, replies: Sequence[Reply], key: str, source: str) -> int: ...


class PagesPort(Protocol):
    async def put(self, openid: str, remainder: str, now: Any) -> None: ...

    async def pop(self, openid: str, now: Any) -> str | None: ...


@dataclass(frozen=True)
class Outcome:
    """What a message was answered with: the passive reply (or None for ``success``)."""

    passive: Reply | None
    action: str | None


def serialize(replies: Sequence[Reply]) -> list[dict[str, Any]]:
    """Replies as JSON-able dicts (stored so a retry can be answered with the very same reply)."""
    out: list[dict[str, Any]] = []
    for r in replies:
        if isinstance(r, TextReply):
            out.append({"type": "text", "text": r.text})
        else:
            out.append({"type": "news", "title": r.title, "description": r.description, "url": r.url,
                        "picurl": r.picurl})
    return out


def deserialize(data: list[dict[str, Any]] | None) -> list[Reply]:
    out: list[Reply] = []
    for item in data or []:
        fields = {k: v for k, v in item.items() if k != "type"}
        out.append(NewsReply(**fields) if item.get("type") == "news" else TextReply(**fields))
    return out


class Gateway:
    """aiohttp handlers for ``GET``/``POST`` on the webhook path."""

    def __init__(
        self,
        config: WeChatConfig,
        dialogue: Dialogue,
        journal: JournalPort,
        late: LateSenderPort,
        pages: PagesPort,
        clock: Callable[[], float] = time.time,
        recent_size: int = 50_000,
    ) -> None:
        self._cfg = config
        self._dialogue = dialogue
        self._journal = journal
        self._late = late
        self._pages = pages
        self._clock = clock
        self._cipher = (
            Cipher(config.token, config.encoding_aes_key, config.app_id or "sandbox")
            if config.mode != "plain"
            else None
        )
        self._recent: OrderedDict[str, asyncio.Future[Outcome]] = OrderedDict()
        self._recent_size = recent_size
        self._background: set[asyncio.Task[Any]] = set()

    def _now(self) -> datetime:
        """The gateway's clock as an aware UTC time: log rows, pages and last-inbound times follow the
        same clock as the signature window (a test's fake clock moves them all together)."""
        return datetime.fromtimestamp(self._clock(), timezone.utc)

    # --- HTTP ---------------------------------------------------------------------------------------

    def _fresh(self, timestamp: str) -> bool:
        try:
            ts = int(timestamp)
        except ValueError:
            return False
        return abs(self._clock() - ts) <= self._cfg.timestamp_window

    async def verify(self, request: web.Request) -> web.Response:
        """Server verification: echo ``echostr`` when the signature is right."""
        q = request.query
        try:
            check_signature((self._cfg.token, q.get("timestamp", ""), q.get("nonce", "")), q.get("signature", ""))
        except SignatureError:
            return web.Response(status=403, text="invalid signature")
        if not self._fresh(q.get("timestamp", "")):
            return web.Response(status=403, text="stale timestamp")
        return web.Response(text=q.get("echostr", ""))

    async def receive(self, request: web.Request) -> web.Response:
        rid = request.headers.get("X-Request-Id") or next_request_id()
        request_id.set(rid)
        started = time.perf_counter()
        limit = self._cfg.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return web.Response(status=413, text="body too large")
        body = await request.content.read(limit + 1)
        if len(body) > limit:
            return web.Response(status=413, text="body too large")
        q = request.query
        timestamp, nonce = q.get("timestamp", ""), q.get("nonce", "")
        encrypted = q.get("encrypt_type", "raw").lower() == "aes"
        try:
            fields = self._open(body, q, timestamp, nonce, encrypted)
            event = to_event(fields)
        except SignatureError:
            log.warning("webhook: bad signature")
            return web.Response(status=403, text="invalid signature")
        except _Refused as exc:
            log.warning("webhook: refused: %s", exc)
            return web.Response(status=exc.status, text=str(exc))
        except CodecError as exc:
            log.warning("webhook: unreadable body: %s", exc)
            return web.Response(status=400, text="bad request")
        outcome = await self.answer(event, started, rid)
        return self._respond(outcome, event, nonce, encrypted, rid)

    def _open(self, body: bytes, q: Any, timestamp: str, nonce: str, encrypted: bool) -> dict[str, str]:
        """Check signature and freshness, decrypt if needed; return the inner message fields."""
        mode = self._cfg.mode
        if encrypted and self._cipher is None:
            raise _Refused(400, "encrypted message but server is in plain mode")
        if not encrypted and mode == "safe":
            raise _Refused(403, "safe mode requires encrypted messages")
        if encrypted:
            envelope = parse_fields(body)
            ciphertext = envelope.get("Encrypt", "")
            check_signature((self._cfg.token, timestamp, nonce, ciphertext), q.get("msg_signature", ""))
            if not self._fresh(timestamp):
                raise _Refused(403, "stale timestamp")
            assert self._cipher is not None
            return parse_fields(self._cipher.decrypt(ciphertext))
        check_signature((self._cfg.token, timestamp, nonce), q.get("signature", ""))
        if not self._fresh(timestamp):
            raise _Refused(403, "stale timestamp")
        return parse_fields(body)

    def _respond(self, outcome: Outcome, event: ResidentEvent, nonce: str, encrypted: bool, rid: str) -> web.Response:
        headers = {"X-Request-Id": rid}
        if outcome.passive is None:
            return web.Response(text="success", headers=headers)
        xml = render_reply(outcome.passive, to_user=event.openid, from_user=event.account, now=int(self._clock()))
        if encrypted and self._cipher is not None:
            xml = self._cipher.encrypt_envelope(xml, nonce or secrets.token_hex(8), str(int(self._clock())))
        return web.Response(text=xml, content_type="application/xml", headers=headers)

    # --- answering ----------------------------------------------------------------------------------

    def _remember(self, key: str, future: asyncio.Future[Outcome]) -> None:
        self._recent[key] = future
        while len(self._recent) > self._recent_size:
            self._recent.popitem(last=False)

    def _remaining(self, started: float) -> float:
        return max(0.0, self._cfg.reply_deadline - (time.perf_counter() - started))

    async def answer(self, event: ResidentEvent, started: float, rid: str) -> Outcome:
        """The passive outcome for ``event``, handling it at most once across retries and processes."""
        key = event.dedup_key
        known = self._recent.get(key)
        if known is not None:
            return await self._await_known(known, started)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._remember(key, future)
        if event.kind in OPENS_WINDOW:  # on the app's clock, like every "now" the dialogue reads
            self._journal.inbound(event.openid, self._now())
        row = self._inbound_row(event, rid)
        try:
            async with asyncio.timeout(min(self._remaining(started), 1.5)):
                first = await self._journal.claim(row)
        except Exception:  # noqa: BLE001 - database trouble must not cost the resident an answer
            log.warning("webhook: dedup claim unavailable, answering with in-process dedup only")
            first = True
        if not first:
            outcome = await self._stored_outcome(key, started)
            if not future.done():
                future.set_result(outcome)
            return outcome
        task = asyncio.create_task(self._process(event, key, started, rid, future))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        try:
            async with asyncio.timeout(self._remaining(started)):
                return await asyncio.shield(future)
        except TimeoutError:
            log.info("webhook: deadline passed, answering success and delivering later")
            return Outcome(None, "late")

    async def _await_known(self, known: asyncio.Future[Outcome], started: float) -> Outcome:
        try:
            async with asyncio.timeout(self._remaining(started)):
                return await asyncio.shield(known)
        except TimeoutError:
            return Outcome(None, "late")

    async def _stored_outcome(self, key: str, started: float) -> Outcome:
        """Another process claimed this message: wait for its stored reply until the deadline."""
        while True:
            try:
                found = await self._journal.find_reply(key)
            except Exception:  # noqa: BLE001
                found = None
            if found is not None:
                replies, action = found
                parsed = deserialize(replies)
                if action == "late" or not parsed:
                    return Outcome(None, action)
                return Outcome(parsed[0], action)
            if self._remaining(started) <= 0.05:
                return Outcome(None, "late")
            await asyncio.sleep(0.05)

    async def _process(
        self, event: ResidentEvent, key: str, started: float, rid: str, future: asyncio.Future[Outcome]
    ) -> None:
        """Run the dialogue, fit replies to WeChat's limits, log, and deliver late ones by the outbox."""
        request_id.set(rid)
        error: str | None = None
        try:
            response = await self._run_dialogue(event)
        except Exception as exc:  # noqa: BLE001 - a resident always gets a reply
            log.exception("dialogue failed for %s", event.kind)
            error = f"{type(exc).__name__}: {exc}"[:500]
            response = Response.text(SORRY, action="error")
        replies = await self._fit(event.openid, list(response.replies))
        late = future.done() or self._remaining(started) <= 0
        passive: Reply | None = None if late or not replies else replies[0]
        extra = replies if late else replies[1:]
        action = "late" if late and replies else response.action
        if not future.done():
            future.set_result(Outcome(passive, action))
        latency = (time.perf_counter() - started) * 1000
        self._journal.record(self._outbound_row(event, key, replies, response, action, latency, error, rid))
        if extra:
            try:
                await self._late.enqueue_replies(event.openid, extra, key=f"reply:{key}", source="webhook")
            except Exception:  # noqa: BLE001
                log.exception("could not queue customer-service replies")

    async def _run_dialogue(self, event: ResidentEvent) -> Response:
        if isinstance(event, TextMessage) and limits.is_more_request(event.content):
            rest = await self._pages.pop(event.openid, self._now())
            if rest:
                return Response.text(rest, intent="more", action="page")
        return await self._dialogue.handle(event)

    async def _fit(self, openid: str, replies: list[Reply]) -> list[Reply]:
        """Cut long text (keeping the rest for "更多") and clip news fields."""
        out: list[Reply] = []
        for reply in replies:
            if isinstance(reply, TextReply):
                if not reply.text.strip():
                    continue
                head, rest = limits.split_text(reply.text)
                if rest:
                    await self._pages.put(openid, rest, self._now())
                out.append(TextReply(head))
            else:
                out.append(
                    NewsReply(
                        title=limits.clip(reply.title, limits.NEWS_TITLE_CHARS),
                        description=limits.clip(reply.description, limits.NEWS_DESCRIPTION_CHARS),
                        url=reply.url,
                        picurl=reply.picurl,
                    )
                )
        return out

    # --- log rows -----------------------------------------------------------------------------------

    def _inbound_row(self, event: ResidentEvent, rid: str) -> dict[str, Any]:
        return {
            "dedup_key": event.dedup_key,
            "reply_to": None,
            "openid": event.openid,
            "direction": "in",
            "kind": event.kind,
            "content": event.summary[:4000],
            "created_at": self._now(),
            "request_id": rid,
        }

    def _outbound_row(
        self,
        event: ResidentEvent,
        key: str,
        replies: list[Reply],
        response: Response,
        action: str | None,
        latency: float,
        error: str | None,
        rid: str,
    ) -> dict[str, Any]:
        text = "\n".join(r.text if isinstance(r, TextReply) else f"[图文] {r.title}" for r in replies)
        return {
            "dedup_key": None,
            "reply_to": key,
            "openid": event.openid,
            "direction": "out",
            "kind": "news" if replies and isinstance(replies[0], NewsReply) else ("text" if replies else "none"),
            "content": text[:4000],
            "replies": serialize(replies),
            "intent": response.intent,
            "item": response.item,
            "action": action,
            "latency_ms": round(latency, 3),
            "error": error,
            "created_at": self._now(),
            "request_id": rid,
        }

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for dialogue tasks still running (shutdown, tests)."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout)


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def setup_routes(app: web.Application, gateway_of: Callable[[web.Request], Gateway], path: str = "/wechat") -> None:
    """Register the webhook; the gateway is looked up per request because it is built on startup."""

    async def get(request: web.Request) -> web.StreamResponse:
        return await gateway_of(request).verify(request)

    async def post(request: web.Request) -> web.StreamResponse:
        return await gateway_of(request).receive(request)

    app.router.add_get(path, get)
    app.router.add_post(path, post)
