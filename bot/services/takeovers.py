"""Live 转人工: once a grid worker has accepted a 转人工 ticket, the conversation is theirs.

While a takeover goes on, the resident's messages (text, voice recognition text, photos as a link to
the ticket page, locations) are relayed to the worker as customer-service messages through the
outbox, and the bot does not answer them; the resident is told "已转给网格员X" at most once every
``tickets.takeover_ack_minutes``, not once per message. The worker answers with "回复 12 …" in chat or the reply box
on the signed ticket page; the answer reaches the resident signed with the worker's name. Every
message either way is a row of the ticket's audit trail (``relay`` / ``reply``), and the outbox row
it was queued under says whether it arrived.

A takeover ends when the ticket leaves 已接单/处理中 (办结, 撤销, 转派, 退单: in the same transaction,
see ``Tickets._apply``; after 转派 and 退单 the resident is told, :meth:`Takeovers.cut`), when the
resident says "结束人工", or when nothing was said either way for ``tickets.takeover_idle_minutes``
(it lapses back to the bot; the resident and the worker are told). A worker's reply restarts an
ended takeover of a ticket that is still open.

Messages to the worker go through ``Tickets.send_to_worker``: outside WeChat's 48-hour window they
arrive as a template message ("您有居民新消息") when ``tickets.worker_template_id`` is set.

Why an in-memory index of who is in a takeover: every resident message asks "is this one talking to
a person?", and almost none are. :class:`TakeoverIndex` answers from memory, so the usual FAQ message
costs no query; it is updated at once by this process and reloaded from the database at most once a
second, so a takeover started in another ``serve`` worker is seen within a second. A hit is always
checked against the database before anything is relayed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from bot.storage import outbox as outbox_q
from bot.storage import tickets as q

if TYPE_CHECKING:
    from bot.services.tickets import Tickets

log = logging.getLogger(__name__)

#: The ticket statuses in which a worker holds the conversation.
LIVE = ("accepted", "in_progress")
#: Replies are checked for delivery failures this long after their takeover ended.
UNDELIVERED_LOOKBACK = timedelta(days=2)
MAX_RELAY_CHARS = 600

# ---- user-facing sentences ------------------------------------------------------------------------
INTRO = "\n接下来您在这里发的消息会直接转给TA，TA也会在这里回复您。不需要了请回复“结束人工”。"
ACK = "已转给网格员{name}，TA会在这里回复您。不需要了请回复“结束人工”。"
REPLY_TO_RESIDENT = "网格员{name}回复您：\n{text}"
RELAY_TO_WORKER = "工单{id} 居民说：\n{text}\n（回复请发“回复 {id} 内容”）"
RELAY_PHOTO = "[照片] <a href=\"{url}\">点此查看</a>"
RELAY_VOICE_UNHEARD = "[一段语音，没能识别成文字，请打电话联系居民]"
RELAY_LOCATION = "[位置] {label}"
RESUMED_FOR_WORKER = "工单{id} 居民又找您了（人工对话已重新接通）：\n{text}\n（回复请发“回复 {id} 内容”）"
ENDED_BY_RESIDENT = "好的，和网格员{name}的人工对话已结束，接下来由智能助手为您服务。还要找人时请说“转人工”。"
ENDED_FOR_WORKER = "居民已结束人工对话（工单{id}）。处理完请回复“办结 {id} 结果”。"
LAPSED_FOR_RESIDENT = ("网格员{name}暂时没有回复，人工对话先结束，接下来由智能助手回答您；"
                       "TA回复后会发到这里。还要找人时请说“转人工”。")
LAPSED_FOR_WORKER = "工单{id}的人工对话已{hours}没有新消息，先交回智能助手。要继续请直接“回复 {id} 内容”。"
DONE_NOTE = "\n人工对话已结束，接下来由智能助手为您服务。"
TRANSFERRED_FOR_RESIDENT = ("您的工单{id}已转给{to}处理，TA接单后会联系您。和网格员{name}的人工对话先结束，"
                            "接下来由智能助手为您服务；还要找人时请说“转人工”。")
RETURNED_FOR_RESIDENT = ("网格员{name}暂时处理不了您的工单{id}，已交回社区重新安排，会有工作人员联系您。"
                         "人工对话先结束，接下来由智能助手为您服务；还要找人时请说“转人工”。")
OTHER_WORKER = "其他网格员"
UNDELIVERED_FOR_WORKER = "工单{id}：您的回复“{text}”没能发给居民（{why}）。请打电话联系居民：{phone}。"
WHY_UNDELIVERED = {45015: "居民超过48小时没有在公众号发消息，微信不允许再给TA发消息",
                   43004: "居民已取消关注公众号"}
#: The same refusals of a resident's message relayed to the worker, as the worker reads them on the page.
WHY_NOT_RELAYED = {45015: "您超过48小时没有在公众号发消息，微信不允许发给您；在公众号里发一条消息即可恢复",
                   43004: "您已取消关注公众号"}
WHY_OTHER = "发送失败，错误码{errcode}"
END_REASONS = {"resident": "居民结束", "lapsed": "超时无人回复", "done": "已办结", "cancel": "居民撤销",
               "transfer": "已转派", "reassign": "已改派", "return": "已退单"}


def why_undelivered(errcode: int | None, relay: bool = False) -> str:
    """Why a message did not arrive, in words a grid worker can act on: a reply to the resident, or
    (``relay``) a resident's message relayed to the worker."""
    return (WHY_NOT_RELAYED if relay else WHY_UNDELIVERED).get(errcode or 0, WHY_OTHER.format(errcode=errcode))


def message_key(ticket_id: int, event_id: int, action: str) -> str:
    """The outbox idempotency key of a relay or reply: the audit row names the message it sent."""
    return f"ticket:{ticket_id}:{event_id}:{action}"


class TakeoverIndex:
    """openid → ids of the tickets whose takeover goes on, in memory (see the module docstring)."""

    def __init__(self, load: Callable[[], Awaitable[list[tuple[str, int]]]], refresh_seconds: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self._refresh = refresh_seconds
        self._monotonic = monotonic
        self._live: dict[str, set[int]] = {}
        self._loaded_at: float | None = None
        self._loading: asyncio.Future[None] | None = None
        self._changes: list[tuple[bool, str, int]] | None = None  # made while a reload runs

    def add(self, openid: str, ticket_id: int) -> None:
        self._live.setdefault(openid, set()).add(ticket_id)
        if self._changes is not None:
            self._changes.append((True, openid, ticket_id))

    def discard(self, openid: str, ticket_id: int) -> None:
        ids = self._live.get(openid)
        if ids is not None:
            ids.discard(ticket_id)
            if not ids:
                del self._live[openid]
        if self._changes is not None:
            self._changes.append((False, openid, ticket_id))

    def forget(self, openid: str) -> None:
        for ticket_id in list(self._live.get(openid, ())):
            self.discard(openid, ticket_id)

    async def has(self, openid: str) -> bool:
        """Whether ``openid`` may be in a takeover (a cheap filter; the caller checks the database)."""
        if self._loaded_at is None or self._monotonic() - self._loaded_at >= self._refresh:
            await self._reload()
        return openid in self._live

    async def _reload(self) -> None:
        if self._loading is not None:  # one reload at a time; the others wait for it
            await asyncio.shield(self._loading)
            return
        self._loading = asyncio.get_running_loop().create_future()
        self._changes = []
        try:
            rows = await self._load()
        except Exception:  # noqa: BLE001 - keep answering from what we have; try again next time
            log.exception("takeover index: reload failed")
            rows = None
        try:
            if rows is not None:
                live: dict[str, set[int]] = {}
                for openid, ticket_id in rows:
                    live.setdefault(openid, set()).add(ticket_id)
                changes, self._changes = self._changes, None
                self._live = live
                for added, openid, ticket_id in changes:  # what this process did while the query ran
                    (self.add if added else self.discard)(openid, ticket_id)
            self._loaded_at = self._monotonic()
        finally:
            self._changes = None
            self._loading.set_result(None)
            self._loading = None


@dataclass(frozen=True)
class Live:
    """A takeover going on: the row, its ticket and the worker who holds the conversation."""

    takeover: dict[str, Any]
    ticket: dict[str, Any]
    worker: dict[str, Any]


class Takeovers:
    """The live 转人工 conversations of :class:`~bot.services.tickets.Tickets` (which owns this)."""

    def __init__(self, tickets: "Tickets") -> None:
        self.tickets = tickets
        self.index = TakeoverIndex(self._live_keys)

    @property
    def idle(self) -> timedelta:
        return timedelta(minutes=self.tickets.config.tickets.takeover_idle_minutes)

    @property
    def ack_every(self) -> timedelta:
        """The resident hears "已转给网格员X" again only after this long without one or a reply."""
        return timedelta(minutes=self.tickets.config.tickets.takeover_ack_minutes)

    async def _live_keys(self) -> list[tuple[str, int]]:
        async with self.tickets.engine.connect() as conn:
            return await q.live_takeover_keys(conn)

    # ---- start and end --------------------------------------------------------------------------

    async def start(self, ticket: dict[str, Any], worker: dict[str, Any]) -> bool:
        """The worker accepted a 转人工 ticket: from now on the conversation is theirs.

        Not for a worker without a bound WeChat account: nothing could be relayed to them."""
        if ticket["kind"] != "human" or ticket["status"] not in LIVE or not worker.get("openid"):
            return False
        async with self.tickets.engine.begin() as conn:
            await q.open_takeover(conn, ticket["id"], ticket["openid"], worker["id"], self.tickets.clock())
        self.index.add(ticket["openid"], ticket["id"])
        return True

    def ended(self, ticket: dict[str, Any]) -> None:
        """``Tickets._apply`` ended this ticket's takeover in its transaction: forget it here too."""
        self.index.discard(ticket["openid"], ticket["id"])

    async def cut(self, before: dict[str, Any], ticket: dict[str, Any], action: str, event_id: int) -> None:
        """A live conversation ended because its worker passed the ticket on (转派) or gave it back
        (退单): the resident, who would otherwise go on writing to nobody, is told who takes over and
        that the bot answers meanwhile. (办结 tells them with its own notice; 撤销 is their own doing.)"""
        if action not in ("transfer", "return"):
            return
        grids = self.tickets.grids
        worker = await grids.worker(before["worker_id"]) if before["worker_id"] is not None else None
        name = worker["name"] if worker else ""
        if action == "transfer":
            other = await grids.worker(ticket["worker_id"]) if ticket["worker_id"] is not None else None
            to = f"网格员{other['name']}" if other else OTHER_WORKER
            text = TRANSFERRED_FOR_RESIDENT.format(id=ticket["id"], name=name, to=to)
        else:
            text = RETURNED_FOR_RESIDENT.format(id=ticket["id"], name=name)
        await self.tickets.send_text(ticket["openid"], message_key(ticket["id"], event_id, "cut-r"), text)

    async def _end(self, live: Live, reason: str, actor: str, idle_since: datetime | None = None) -> int | None:
        """End one takeover (once, whoever tries) with its audit row; the event id, or None if it had ended."""
        now = self.tickets.clock()
        ticket = live.ticket
        async with self.tickets.engine.begin() as conn:
            if not await q.end_takeover(conn, ticket["id"], now, reason, idle_since):
                return None
            event_id = await q.add_event(conn, ticket["id"], now, actor, "takeover_end", ticket["status"],
                                         ticket["status"], END_REASONS.get(reason, reason))
        self.index.discard(ticket["openid"], ticket["id"])
        return event_id

    async def end_by_resident(self, openid: str) -> list[Live]:
        """"结束人工": every takeover of this resident ends; their workers are told."""
        ended = []
        for live in await self._live(openid, lapse=False):
            event_id = await self._end(live, "resident", f"resident:{openid}")
            if event_id is not None:
                ended.append(live)
                await self._to_worker(live, event_id, "end", ENDED_FOR_WORKER.format(id=live.ticket["id"]))
        return ended

    async def _lapse(self, live: Live) -> bool:
        """End a takeover nobody used for ``idle``; the resident and the worker are told."""
        now = self.tickets.clock()
        event_id = await self._end(live, "lapsed", "system", idle_since=now - self.idle)
        if event_id is None:
            return False
        name = live.worker["name"]
        await self.tickets.send_text(live.ticket["openid"], message_key(live.ticket["id"], event_id, "lapsed-r"),
                                     LAPSED_FOR_RESIDENT.format(name=name))
        hours = _duration(self.idle)
        await self._to_worker(live, event_id, "lapsed", LAPSED_FOR_WORKER.format(id=live.ticket["id"], hours=hours))
        return True

    # ---- the resident's side ----------------------------------------------------------------------

    async def _live(self, openid: str, lapse: bool = True) -> list[Live]:
        """The resident's takeovers going on (checked against the database); idle ones lapse here."""
        if not await self.index.has(openid):
            return []
        async with self.tickets.engine.connect() as conn:
            rows = await q.live_takeovers_of(conn, openid)
        out = []
        now = self.tickets.clock()
        for row in rows:
            ticket = await self.tickets.get(row["ticket_id"])
            worker = await self.tickets.grids.worker(row["worker_id"])
            if ticket is None or worker is None or ticket["status"] not in LIVE:
                # Defensive: _apply ends takeovers with the ticket; a row left over must not hold the resident.
                async with self.tickets.engine.begin() as conn:
                    await q.end_takeover(conn, row["ticket_id"], now, "stale")
                self.index.discard(openid, row["ticket_id"])
                continue
            live = Live(row, ticket, worker)
            if lapse and row["active_at"] < now - self.idle:
                await self._lapse(live)
                continue
            out.append(live)
        if not rows:
            self.index.forget(openid)  # ended by another process
        return out

    async def current(self, openid: str) -> Live | None:
        """The takeover the resident's next message belongs to, or None (the bot answers)."""
        found = await self._live(openid)
        return found[0] if found else None

    async def relay(self, live: Live, text: str, media_id: str | None = None) -> bool | None:
        """Pass one resident message on to the worker. True when the resident should get the short
        acknowledgement (the first message, or the first after :attr:`ack_every`), False for silence,
        None when the takeover ended a moment ago (the message is the bot's after all)."""
        ticket, openid = live.ticket, live.ticket["openid"]
        now = self.tickets.clock()
        acked = live.takeover["acked_at"]
        ack = acked is None or now - acked >= self.ack_every
        values: dict[str, Any] = {"active_at": now, **({"acked_at": now} if ack else {})}
        if media_id:
            await self.tickets.add_media(ticket["id"], [{"type": "image", "media_id": media_id, "by": "resident"}])
            text = RELAY_PHOTO.format(url=self.tickets.page_url(ticket["id"], live.worker["id"]))
        async with self.tickets.engine.begin() as conn:
            if not await q.touch_takeover(conn, ticket["id"], values):
                return None
            event_id = await q.add_event(conn, ticket["id"], now, f"resident:{openid}", "relay", ticket["status"],
                                         ticket["status"], "[照片]" if media_id else text)
        shown = text if len(text) <= MAX_RELAY_CHARS else text[:MAX_RELAY_CHARS] + "…（全文见工单页面）"
        await self._to_worker(live, event_id, "relay", RELAY_TO_WORKER.format(id=ticket["id"], text=shown))
        return ack

    async def resume(self, openid: str, text: str) -> Live | None:
        """The resident asks for a person again after their takeover ended, while the 转人工 ticket is
        still open: the same worker takes the conversation back (no second ticket)."""
        for ticket in await self.tickets.of_resident(openid, 5):
            if ticket["kind"] != "human" or ticket["status"] not in LIVE:
                continue
            worker = await self.tickets.grids.worker(ticket["worker_id"])
            if worker is None or not worker.get("openid"):
                return None
            now = self.tickets.clock()
            async with self.tickets.engine.begin() as conn:
                await q.open_takeover(conn, ticket["id"], openid, worker["id"], now, acked=True)
                event_id = await q.add_event(conn, ticket["id"], now, f"resident:{openid}", "takeover",
                                             ticket["status"], ticket["status"], text)
            self.index.add(openid, ticket["id"])
            live = Live({"ticket_id": ticket["id"], "worker_id": worker["id"], "started_at": now, "active_at": now,
                         "acked_at": now, "ended_at": None, "end_reason": None}, ticket, worker)
            await self._to_worker(live, event_id, "relay", RESUMED_FOR_WORKER.format(id=ticket["id"], text=text))
            return live
        return None

    # ---- the worker's side ----------------------------------------------------------------------

    async def replied(self, ticket: dict[str, Any], replier: dict[str, Any], event_id: int, text: str) -> None:
        """A worker's 回复 (its audit row is ``event_id``) goes to the resident; the conversation is the
        assignee's again if it had ended."""
        now = self.tickets.clock()
        assignee = ticket["worker_id"] or replier["id"]
        async with self.tickets.engine.begin() as conn:  # the reply itself tells the resident someone is there
            if not await q.touch_takeover(conn, ticket["id"], {"active_at": now, "acked_at": now}):
                await q.open_takeover(conn, ticket["id"], ticket["openid"], assignee, now, acked=True)
        self.index.add(ticket["openid"], ticket["id"])
        await self.tickets.send_text(ticket["openid"], message_key(ticket["id"], event_id, "reply"),
                                     REPLY_TO_RESIDENT.format(name=replier["name"], text=text))

    async def _to_worker(self, live: Live, event_id: int, what: str, text: str) -> None:
        await self.tickets.send_to_worker(live.worker, live.ticket["id"], message_key(live.ticket["id"], event_id, what),
                                          text, what)

    # ---- the poller's round ---------------------------------------------------------------------

    async def run_round(self) -> tuple[int, int]:
        """Lapse idle takeovers and tell workers about replies that did not arrive: (lapsed, reported)."""
        now = self.tickets.clock()
        lapsed = 0
        async with self.tickets.engine.connect() as conn:
            idle = await q.idle_takeovers(conn, now - self.idle)
        for row in idle:
            ticket = await self.tickets.get(row["ticket_id"])
            worker = await self.tickets.grids.worker(row["worker_id"])
            if ticket is not None and worker is not None and await self._lapse(Live(row, ticket, worker)):
                lapsed += 1
        return lapsed, await self.report_undelivered()

    async def report_undelivered(self) -> int:
        """Each reply the outbox could not deliver (45015 outside the 48-hour window, 43004 …) is told to
        the worker once, with the resident's phone, and written to the audit trail."""
        now = self.tickets.clock()
        async with self.tickets.engine.connect() as conn:
            recent = await q.recent_takeovers(conn, now - UNDELIVERED_LOOKBACK)
            replies = await q.events_of_many(conn, [r["ticket_id"] for r in recent], ["reply", "undelivered"])
            reported = {(e["data"] or {}).get("event") for e in replies if e["action"] == "undelivered"}
            todo = [e for e in replies if e["action"] == "reply" and e["id"] not in reported
                    and e["at"] >= now - UNDELIVERED_LOOKBACK]
            delivery = await outbox_q.delivery_of(conn, [message_key(e["ticket_id"], e["id"], "reply") for e in todo])
        told = 0
        for e in todo:
            d = delivery.get(message_key(e["ticket_id"], e["id"], "reply"))
            if d is None or d["status"] != "failed":
                continue
            ticket = await self.tickets.get(e["ticket_id"])
            worker_id = int(str(e["actor"]).split(":")[1]) if str(e["actor"]).startswith("worker:") else None
            worker = await self.tickets.grids.worker(worker_id) if worker_id is not None else None
            if ticket is None or worker is None:
                continue
            why = why_undelivered(d["errcode"])
            key = message_key(ticket["id"], e["id"], "undelivered")
            text = UNDELIVERED_FOR_WORKER.format(id=ticket["id"], text=_short(e["note"] or ""), why=why,
                                                 phone=ticket["phone"] or "（未留电话）")
            if worker.get("openid") and not await self.tickets.send_to_worker(worker, ticket["id"], key, text,
                                                                              "undelivered"):
                continue  # another process told them already
            async with self.tickets.engine.begin() as conn:
                await q.add_event(conn, ticket["id"], now, "system", "undelivered", ticket["status"], ticket["status"],
                                  why, {"event": e["id"], "errcode": d["errcode"]})
            told += 1
        return told

    # ---- reads for the page and the CLI -----------------------------------------------------------

    async def of(self, ticket_ids: list[int]) -> dict[int, dict[str, Any]]:
        async with self.tickets.engine.connect() as conn:
            return await q.takeovers_of(conn, ticket_ids)

    async def deliveries(self, events: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        """For relay/reply audit rows: event id → the outbox row's status, errcode and error. A relay
        that WeChat refused with 45015 and that went to the worker as a template instead is as
        delivered as that template."""
        keys = {message_key(e["ticket_id"], e["id"], e["action"]): e["id"] for e in events
                if e["action"] in ("relay", "reply")}
        async with self.tickets.engine.connect() as conn:
            found = await outbox_q.delivery_of(conn, [*keys, *map(outbox_q.fallback_key, keys)])
        out = {}
        for key, event_id in keys.items():
            d = found.get(outbox_q.fallback_key(key)) or found.get(key)
            if d is not None:
                out[event_id] = d
        return out


def _short(text: str, n: int = 30) -> str:
    return text if len(text) <= n else text[:n] + "…"


def _duration(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes % 60 == 0:
        return f"{minutes // 60}小时"
    return f"{minutes}分钟"
