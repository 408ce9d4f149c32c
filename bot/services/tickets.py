"""Tickets (工单) for grid workers: creation, routing, the lifecycle, notifications, time limits, report.

The lifecycle follows 12345 接诉即办 practice::

    待接单 pending ──接单──► 已接单 accepted ──开始/取件──► 处理中 in_progress ──办结──► 已办结 done ──评价──► 已评价 rated
       ▲  │                     │                                                   │
       │  └──退单──► 已退单 returned ──改派(管理员)──┘                                └─不满意→ 重办: back to pending
       └──────────── 转派 (to another worker) from pending/accepted/in_progress
    撤销 by the resident from any open status → 已撤销 cancelled; 延期 asked by the worker, decided by an admin.

Why every change is a conditional UPDATE: two people may act on one ticket at the same moment (a
worker on the page and the backup in chat). ``UPDATE … WHERE status IN (allowed) AND worker_id = seen``
lets the database pick exactly one winner; the loser is told what happened instead. Each change writes
an audit row (who, when, what, note) in the same transaction.

A 转人工 ticket, once accepted, is a live conversation between the resident and the worker in WeChat
(``bot.services.takeovers``); leaving 已接单/处理中 ends it in the same transaction as the status change.

Notifications leave through the outbox (idempotency key = ticket + audit row + recipient), so a retried
webhook or a crash between commit and send can neither lose nor double a message. Time limits are rows
in ``ticket_timers`` polled by an APScheduler job, so they survive restarts.

A customer-service message to a grid worker (a relayed resident message, a new ticket without
``assign_template_id`` …) cannot reach a worker who has not written to the account for 48 hours
(WeChat answers 45015). With ``tickets.worker_template_id`` set, such a message carries a template
("您有居民新消息", the ticket number, a link to the ticket page) that the outbox sender queues instead
on a 45015; when ``residents.last_inbound_at`` already says the window is closed, the template is
queued straight away under the message's own key (:meth:`Tickets.send_to_worker`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import time
import tomllib
from calendar import monthrange
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import utcnow
from bot.config import Config
from bot.logs import mask_personal
from bot.services.grids import GridDirectory
from bot.services.outbox import Outbox
from bot.services.residents import window_known_closed
from bot.services.takeovers import DONE_NOTE, INTRO, LIVE, Takeovers
from bot.storage import residents as residents_q
from bot.storage import tickets as q
from bot.storage.outbox import FALLBACK
from bot.storage.tickets import T as TICKETS

log = logging.getLogger(__name__)

KINDS = {"proxy": "代办", "report": "报事报修", "human": "转人工"}
STATUS_CN = {
    "pending": "待接单", "accepted": "已接单", "in_progress": "处理中", "done": "已办结", "rated": "已评价",
    "returned": "已退单", "cancelled": "已撤销",
}
RATINGS = ("满意", "基本满意", "不满意")
OPEN_FOR_WORKER = ("pending", "accepted", "in_progress")

# action: (statuses it may start from, status it leads to or None, who may do it, Chinese verb)
ACTIONS: dict[str, tuple[tuple[str, ...], str | None, str, str]] = {
    "accept": (("pending",), "accepted", "grid", "接单"),
    "start": (("accepted",), "in_progress", "assignee", "开始处理"),
    "note": (("accepted", "in_progress"), None, "assignee", "添加备注"),
    "done": (("accepted", "in_progress"), "done", "assignee", "办结"),
    "transfer": (("pending", "accepted", "in_progress"), "pending", "assignee", "转派"),
    "return": (("pending", "accepted"), "returned", "assignee", "退单"),
    "extend": (("accepted", "in_progress"), None, "assignee", "申请延期"),
    "extend_ok": (("accepted", "in_progress"), None, "admin", "批准延期"),
    "extend_no": (("accepted", "in_progress"), None, "admin", "驳回延期"),
    "reassign": (("returned", "pending"), "pending", "admin", "改派"),
    "pickup": (("accepted", "in_progress"), "in_progress", "assignee", "登记取件"),
    "handin": (("in_progress",), None, "assignee", "登记交件"),
    "giveback": (("in_progress", "done"), None, "assignee", "登记还件"),
    "cancel": (("pending", "accepted", "in_progress", "returned"), "cancelled", "resident", "撤销"),
    "rate": (("done",), "rated", "resident", "评价"),
    "reopen": (("done",), "pending", "resident", "重办"),
    "confirm": (("accepted", "in_progress", "done", "rated"), None, "resident", "确认"),
    "reply": (LIVE, None, "assignee", "回复居民"),
}
CUSTODY = {"pickup": "取件", "handin": "交到便民服务站", "giveback": "归还原件"}
CUSTODY_VERBS = {"pickup": "取件", "handin": "交件", "giveback": "还件"}  # the chat commands
#: Where the documents are after each custody step, for the resident ("我的工单") and the page.
CUSTODY_WHERE = {"pickup": "在网格员{name}手里", "handin": "已交到便民服务站", "giveback": "原件已归还"}

# ---- user-facing sentences (notifications; the dialogue's own sentences live in the handler) ----
NOT_FOUND = "没有找到工单{id}，请核对编号。"
NOT_YOURS = "工单{id}不归您处理。"
NOT_RESIDENTS = "工单{id}不是您提交的。"
ADMIN_ONLY = "只有社区管理员可以{verb}。"
WRONG_STATE = "工单{id}现在是「{status}」，不能{verb}。"
TAKEN = "工单{id}已经由{name}接单了。"
NEED_NOTE = "请写明{what}，比如：{example}"
NO_EXTENSION = "工单{id}没有待审批的延期申请。"
UNKNOWN_WORKER = "没有编号为{id}的网格员。"

NEW_FOR_WORKER = "新工单{id}（{kind}{item}）\n居民地址：{address}\n电话：{phone}\n{detail}\n请在{due}前接单：回复“接单 {id}”"
ACCEPTED_FOR_RESIDENT = "您的工单{id}（{kind}{item}）已由网格员{name}于{at}接单，联系电话{phone}。"
DONE_FOR_RESIDENT = ("您的工单{id}（{kind}{item}）已于{at}办结：{note}\n"
                     "请回复 满意、基本满意 或 不满意 为这次服务评价。")
FIXED_FOR_FOLLOWER = "您关注的问题（工单{id}：{content}）已于{at}处理完毕，谢谢您的反映！"
CANCELLED_FOR_WORKER = "工单{id}已被居民撤销，不用再处理了。"
REOPENED_FOR_ADMIN = "工单{id}（{kind}{item}）居民评价“不满意”，已重办，请安排：回复“改派 {id} 网格员编号”或“接单 {id}”。"
RETURNED_FOR_ADMIN = "工单{id}被{name}退单，原因：{note}。请改派：回复“改派 {id} 网格员编号”。"
EXTEND_FOR_ADMIN = "{name}申请工单{id}延期{hours}小时，原因：{note}。回复“同意延期 {id}”或“不同意延期 {id}”。"
EXTEND_DECIDED = "工单{id}的延期申请{result}。"
REMIND_ACCEPT = "提醒：工单{id}还没有接单，请在{due}前回复“接单 {id}”。"
REMIND_DONE = "提醒：工单{id}请在{due}前办结。"
ESCALATE_ACCEPT = "督办：工单{id}（{kind}{item}）超时未接单，承办人：{name}。"
ESCALATE_DONE = "督办：工单{id}（{kind}{item}）超过办结时限，承办人：{name}。"
CUSTODY_FOR_RESIDENT = "网格员{name}已{what}：{note}（工单{id}）。请核对后回复“确认 {id}”。"
CONFIRMED_FOR_WORKER = "居民已确认{what}（工单{id}）。"
CUSTODY_PROXY_ONLY = "工单{id}不是代办工单，没有材料要交接。"
CUSTODY_NO_PICKUP = "工单{id}还没有登记取件，请先回复“取件 {id} 材料清单”。"
NOTHING_TO_CONFIRM = "工单{id}还没有需要您确认的材料交接。"
NOTHING_PENDING = "您目前没有需要确认的材料交接。"
ALREADY_CONFIRMED = "工单{id}的{what}您已经确认过了。"
NOT_AN_IMAGE = "只能上传照片（JPG、PNG、GIF 或 WebP）。"
REPLY_HUMAN_ONLY = "工单{id}不是转人工工单，请打电话联系居民。"
REPLY_TOO_LONG = "回复太长了，请分几条发（每条不超过{n}字）。"
MAX_REPLY_CHARS = 500
# The template a worker gets instead of a customer-service message outside the 48-hour window.
WORKER_TEMPLATE_FIRST = {"relay": "您有居民新消息（工单{id}）", "assign": "您有新工单（工单{id}）"}
WORKER_TEMPLATE_OTHER = "您有工单新消息（工单{id}）"
WORKER_TEMPLATE_REMARK = ("点开查看工单。您超过48小时没有在公众号发消息，微信只能这样通知您；"
                          "在公众号里发任意一条消息后，消息会重新直接发到聊天里。")
WORKER_TEMPLATE_CHARS = 100


class TicketError(Exception):
    """A refused action, phrased in Chinese for the person who tried it."""


def local(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


class WorkCalendar:
    """Working days per China's official holiday calendar (``chinese_calendar``), working hours from config.

    For years the package does not know yet it falls back to Monday–Friday rather than failing."""

    def __init__(self, tz: str, start: str, end: str) -> None:
        self.tz = ZoneInfo(tz)
        self.start = tuple(int(x) for x in start.split(":"))
        self.end = tuple(int(x) for x in end.split(":"))

    @staticmethod
    def is_workday(day: date) -> bool:
        import chinese_calendar

        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            return day.weekday() < 5

    def _bounds(self, day: date) -> tuple[datetime, datetime]:
        s = datetime(day.year, day.month, day.day, self.start[0], self.start[1], tzinfo=self.tz)
        e = datetime(day.year, day.month, day.day, self.end[0], self.end[1], tzinfo=self.tz)
        return s, e

    def add_work_minutes(self, at: datetime, minutes: float) -> datetime:
        """The moment ``minutes`` of working time after ``at`` (clocks stop at night and on holidays)."""
        cur = at.astimezone(self.tz)
        left = timedelta(minutes=minutes)
        for _ in range(400):
            s, e = self._bounds(cur.date())
            if self.is_workday(cur.date()) and cur < e:
                cur = max(cur, s)
                if cur + left <= e:
                    return (cur + left).astimezone(timezone.utc)
                left -= e - cur
            cur = datetime.combine(cur.date() + timedelta(days=1), datetime.min.time(), self.tz)
        return (at + timedelta(minutes=minutes)).astimezone(timezone.utc)

    def add_workdays(self, at: datetime, days: int) -> datetime:
        """End of the working day ``days`` working days after ``at``'s day (2 = by the end of the day after next)."""
        day = at.astimezone(self.tz).date()
        counted = 0
        for _ in range(400):
            day += timedelta(days=1)
            if self.is_workday(day):
                counted += 1
                if counted >= days:
                    break
        return self._bounds(day)[1].astimezone(timezone.utc)


# ---- signed links to the worker's ticket page -----------------------------------------------------


class LinkSigner:
    """``/t/<id>?w=<worker>&e=<expiry>&s=<hmac>``: no login, but only for that worker, and only for a while."""

    def __init__(self, key: bytes, ttl_hours: int) -> None:
        self._key = key
        self.ttl = timedelta(hours=ttl_hours)

    def _mac(self, ticket_id: int, worker_id: int, expires: int) -> str:
        msg = f"{ticket_id}:{worker_id}:{expires}".encode()
        return base64.urlsafe_b64encode(hmac.new(self._key, msg, hashlib.sha256).digest()[:18]).decode()

    def sign(self, ticket_id: int, worker_id: int, now: datetime) -> dict[str, str]:
        expires = int((now + self.ttl).timestamp())
        return {"w": str(worker_id), "e": str(expires), "s": self._mac(ticket_id, worker_id, expires)}

    def verify(self, ticket_id: int, params: dict[str, str], now: datetime) -> int | None:
        """The worker id if the signature is genuine and not expired, else None."""
        try:
            worker_id, expires, sig = int(params["w"]), int(params["e"]), str(params["s"])
        except (KeyError, ValueError):
            return None
        if not hmac.compare_digest(sig.encode(), self._mac(ticket_id, worker_id, expires).encode()):
            return None
        if now.timestamp() > expires:
            return None
        return worker_id


def link_key(config: Config) -> bytes:
    secret = config.tickets.link_secret
    if not secret:  # derived, so links still work out of the box; set tickets.link_secret in production
        secret = "tickets-link:" + config.wechat.token + ":" + config.wechat.app_secret
    return hashlib.sha256(secret.encode()).digest()


# ---- service items (the checklist that travels with a 代办 ticket) ---------------------------------


@dataclass(frozen=True)
class ItemInfo:
    id: str
    name: str
    proxy: bool
    aliases: tuple[str, ...]
    checklist: tuple[str, ...]


class ItemCatalog:
    """Reads ``faq/<id>.toml`` directly (name, aliases, proxy, materials): tickets need only these."""

    def __init__(self, faq_dir: Path | str) -> None:
        self._dir = Path(faq_dir)
        self._cache: dict[str, tuple[float, ItemInfo | None]] = {}

    def get(self, item_id: str) -> ItemInfo | None:
        path = self._dir / f"{item_id}.toml"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        cached = self._cache.get(item_id)
        if cached and cached[0] == mtime:
            return cached[1]
        info: ItemInfo | None
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
            info = ItemInfo(
                id=item_id, name=str(data["name"]), proxy=bool(data.get("proxy")),
                aliases=tuple(str(a) for a in data.get("aliases", [])),
                checklist=tuple(_material(m) for m in data.get("materials", [])),
            )
        except (OSError, KeyError, tomllib.TOMLDecodeError, TypeError):
            info = None
        self._cache[item_id] = (mtime, info)
        return info

    def all(self) -> list[ItemInfo]:
        return [i for i in (self.get(p.stem) for p in sorted(self._dir.glob("*.toml"))) if i]

    def find(self, text: str) -> ItemInfo | None:
        """The item whose name or alias occurs in ``text`` (longest wins)."""
        said = re.sub(r"\s+", "", text)
        best: tuple[int, ItemInfo] | None = None
        for item in self.all():
            for name in (item.name, *item.aliases):
                if name and name in said and (best is None or len(name) > best[0]):
                    best = (len(name), item)
        return best[1] if best else None


def _material(m: dict[str, Any]) -> str:
    count = f"{m['count']}份" if m.get("count") else ""
    return f"{m['name']}（{m.get('form', '')}{count}）"


# ---- the service --------------------------------------------------------------------------------


def fingerprint(openid: str, kind: str, key: str) -> str:
    norm = re.sub(r"[\s，。,.!！?？]+", "", key)
    return hashlib.sha256(f"{openid}|{kind}|{norm}".encode()).hexdigest()[:40]


class Tickets:
    """Everything about tickets that is not conversation: the handler, the page and the CLI call this."""

    def __init__(self, engine: AsyncEngine, outbox: Outbox, config: Config, grids: GridDirectory,
                 items: ItemCatalog, clock: Callable[[], datetime] = utcnow,
                 wake: Callable[[], None] | None = None, api: Any = None) -> None:
        self.engine = engine
        self.outbox = outbox
        self.config = config
        self.grids = grids
        self.items = items
        self._clock = clock
        self.calendar = WorkCalendar(config.app.timezone, config.tickets.work_start, config.tickets.work_end)
        self.links = LinkSigner(link_key(config), config.tickets.link_ttl_hours)
        self._wake = wake or (lambda: None)
        self.api = api  # bot.wechat.api.WeChatApi for media downloads, or None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.takeovers = Takeovers(self)  # live 转人工 conversations

    # The clock is swappable so tests can move time (escalation) without sleeping.
    @property
    def clock(self) -> Callable[[], datetime]:
        return self._clock

    @clock.setter
    def clock(self, value: Callable[[], datetime]) -> None:
        self._clock = value
        self.grids.clock = value

    def fmt(self, at: datetime | None) -> str:
        if at is None:
            return "—"
        return at.astimezone(self.calendar.tz).strftime("%m月%d日 %H:%M")

    # ---- limits -----------------------------------------------------------------------------

    def accept_due(self, start: datetime) -> datetime:
        return self.calendar.add_work_minutes(start, self.config.tickets.accept_minutes)

    def done_due(self, kind: str, start: datetime) -> datetime:
        tc = self.config.tickets
        if kind == "proxy":
            return self.calendar.add_workdays(start, tc.proxy_done_workdays)
        hours = tc.report_done_hours if kind == "report" else tc.human_done_hours
        return start + timedelta(hours=hours)

    def _timers(self, prefix: str, start: datetime, due: datetime) -> list[tuple[str, datetime]]:
        warn = start + (due - start) * self.config.tickets.warn_ratio
        return [(f"{prefix}_warn", warn), (f"{prefix}_due", due)]

    # ---- creation ---------------------------------------------------------------------------

    async def create(self, kind: str, openid: str, *, grid_id: str | None, content: str = "",
                     item: ItemInfo | None = None, address: str | None = None, phone: str | None = None,
                     time_window: str | None = None, media: list[dict[str, Any]] | None = None,
                     latitude: float | None = None, longitude: float | None = None,
                     dedup_key: str | None = None) -> tuple[dict[str, Any], bool]:
        """Open and route a ticket; (ticket, False) when the same request is already open (dedup window).

        "The same request" is the same item (代办) or text (报事) unless ``dedup_key`` says otherwise:
        转人工 passes "" so asking for a person twice, in any words, is one ticket."""
        now = self.clock()
        fp = fingerprint(openid, kind, dedup_key if dedup_key is not None else (item.id if item else content))
        assignee, why = await self.grids.assignee(grid_id)
        accept_due = self.accept_due(now)
        values = {
            "kind": kind, "status": "pending", "openid": openid, "grid_id": grid_id,
            "worker_id": assignee["id"] if assignee else None, "item_id": item.id if item else None,
            "item_name": item.name if item else None, "checklist": list(item.checklist) if item else None,
            "content": content, "address": address, "phone": phone, "time_window": time_window,
            "media": media or [], "latitude": latitude, "longitude": longitude, "fingerprint": fp,
            "reopened": 0, "created_at": now, "updated_at": now, "accept_due_at": accept_due,
        }
        async with self.engine.begin() as conn:
            dup = await q.find_duplicate(conn, fp, now - timedelta(seconds=self.config.tickets.dedup_seconds))
            if dup is not None:
                return dup, False
            ticket_id = await q.insert(conn, values)
            event_id = await q.add_event(conn, ticket_id, now, f"resident:{openid}", "create", None, "pending",
                                         None, {"routed": why, "worker_id": values["worker_id"]})
            await q.add_timers(conn, ticket_id, self._timers("accept", now, accept_due))
            ticket = await q.get(conn, ticket_id)
        assert ticket is not None
        log.info("ticket %s (%s) created, routed to worker %s (%s)", ticket_id, kind, values["worker_id"], why)
        await self._notify_assigned(ticket, event_id)
        if media:
            self.spawn(self.download_media(ticket_id))
        return ticket, True

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _change_media(self, ticket_id: int,
                            change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> bool:
        """Read-modify-write the ticket's media list under the row's lock, so two changes at once
        (a photo from the page while a download finishes) cannot lose one. False: no such ticket."""
        async with self.engine.begin() as conn:
            await q.lock(conn, ticket_id)
            ticket = await q.get(conn, ticket_id)
            if ticket is None:
                return False
            await q.set_values(conn, ticket_id, {"media": change([dict(m) for m in ticket["media"] or []])})
        return True

    async def add_media(self, ticket_id: int, entries: list[dict[str, Any]]) -> None:
        if not await self._change_media(ticket_id, lambda media: [*media, *entries]):
            return
        if any(e.get("media_id") and not e.get("path") for e in entries):  # WeChat media still to fetch
            self.spawn(self.download_media(ticket_id))

    def media_root(self) -> Path:
        return Path(self.config.tickets.media_dir or Path(self.config.app.data_dir) / "ticket-media")

    def media_folder(self, ticket_id: int) -> Path:
        return self.media_root() / str(ticket_id)

    async def save_photo(self, ticket_id: int, worker_id: int, content: bytes, step: str | None = None) -> dict[str, Any]:
        """Keep a photo a worker took (a note's, or of the documents at a custody step) with the ticket.

        Only real images are kept (JPEG, PNG, GIF, WebP by their first bytes): the page serves them
        back, and must never serve a file a browser would run."""
        kind = image_type(content)
        if kind is None:
            raise TicketError(NOT_AN_IMAGE)
        folder = self.media_folder(ticket_id)
        name = f"worker-{worker_id}-{hashlib.sha256(content).hexdigest()[:12]}.{kind}"
        await asyncio.to_thread(_write_file, folder, name, content)
        entry = {"type": "image", "by": f"worker:{worker_id}", "path": str(folder / name), "size": len(content)}
        if step:
            entry["step"] = step
        await self.add_media(ticket_id, [entry])
        return entry

    async def download_media(self, ticket_id: int) -> int:
        """Fetch photos while WeChat's MediaId is valid (3 days) and keep them; returns how many were saved."""
        if self.api is None:
            return 0
        async with self.engine.connect() as conn:
            ticket = await q.get(conn, ticket_id)
        if ticket is None:
            return 0
        folder = self.media_folder(ticket_id)
        results: dict[str, dict[str, Any]] = {}  # media_id -> what to record for it
        for entry in ticket["media"] or []:
            media_id = entry.get("media_id")
            if entry.get("path") or not media_id or media_id in results:
                continue
            try:
                content = await self.api.download_media(media_id)
            except Exception as exc:  # noqa: BLE001 - keep the ticket; the id is still recorded
                results[media_id] = {"error": type(exc).__name__}
                continue
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{re.sub(r'[^A-Za-z0-9_-]', '_', media_id)}.bin"
            await asyncio.to_thread(path.write_bytes, content)
            results[media_id] = {"path": str(path), "size": len(content)}

        def merge(media: list[dict[str, Any]]) -> list[dict[str, Any]]:
            # Entries added while we downloaded are kept as they are (the list is re-read under the lock).
            for entry in media:
                found = results.get(entry.get("media_id") or "")
                if found and not entry.get("path"):
                    entry.update(found)
            return media

        if results:
            await self._change_media(ticket_id, merge)
        return sum(1 for r in results.values() if "path" in r)

    # ---- reads ------------------------------------------------------------------------------

    async def get(self, ticket_id: int) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            return await q.get(conn, ticket_id)

    async def events(self, ticket_id: int) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            return await q.events_of(conn, ticket_id)

    async def timers(self, ticket_id: int) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            return await q.timers_of(conn, ticket_id)

    async def my_tasks(self, worker_id: int, limit: int = 10) -> tuple[list[dict[str, Any]], int]:
        async with self.engine.connect() as conn:
            rows = await q.open_for_worker(conn, worker_id, limit)
            total = len(rows) if len(rows) < limit else await q.count_open_for_worker(conn, worker_id)
        return rows, total

    async def of_resident(self, openid: str, limit: int = 5) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            return await q.of_resident(conn, openid, limit)

    async def latest_unrated(self, openid: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            return await q.latest_unrated(conn, openid)

    async def can_see(self, worker: dict[str, Any], ticket: dict[str, Any]) -> bool:
        """A worker sees only tickets of their grids or assigned to them; admins and the duty desk see all."""
        if worker["role"] in ("admin", "duty") or ticket["worker_id"] == worker["id"]:
            return True
        return ticket["grid_id"] is not None and ticket["grid_id"] in await self.grids.grids_of_worker(worker["id"])

    @staticmethod
    def full_view(worker: dict[str, Any], ticket: dict[str, Any]) -> bool:
        """Whether this worker may see the resident's phone and address in full: the assignee and
        admins (and the duty desk) only; other workers of the grid see them masked."""
        return worker["role"] in ("admin", "duty") or ticket["worker_id"] == worker["id"]

    def label(self, ticket: dict[str, Any]) -> str:
        item = f"·{ticket['item_name']}" if ticket.get("item_name") else ""
        return f"{KINDS.get(ticket['kind'], ticket['kind'])}{item}"

    # ---- the state machine ------------------------------------------------------------------

    async def _load(self, ticket_id: int) -> dict[str, Any]:
        ticket = await self.get(ticket_id)
        if ticket is None:
            raise TicketError(NOT_FOUND.format(id=ticket_id))
        return ticket

    async def _check_worker(self, action: str, ticket: dict[str, Any], worker: dict[str, Any]) -> None:
        allowed, _, who, verb = ACTIONS[action]
        admin = worker["role"] in ("admin", "duty")
        if who == "admin" and not admin:
            raise TicketError(ADMIN_ONLY.format(verb=verb))
        if who == "assignee" and not admin and ticket["worker_id"] != worker["id"]:
            raise TicketError(NOT_YOURS.format(id=ticket["id"]))
        if who == "grid" and not admin and not await self.can_see(worker, ticket):
            raise TicketError(NOT_YOURS.format(id=ticket["id"]))
        if ticket["status"] not in allowed:
            if action == "accept" and ticket["status"] in ("accepted", "in_progress") and ticket["worker_id"]:
                other = await self.grids.worker(ticket["worker_id"])
                who_ = "您" if ticket["worker_id"] == worker["id"] else (other or {}).get("name", "其他人")
                raise TicketError(TAKEN.format(id=ticket["id"], name=who_))
            raise TicketError(WRONG_STATE.format(id=ticket["id"], status=STATUS_CN[ticket["status"]], verb=verb))

    async def _apply(self, ticket: dict[str, Any], action: str, actor: str, values: dict[str, Any],
                     note: str | None = None, data: dict[str, Any] | None = None,
                     timers: Callable[[Any, int], Awaitable[None]] | None = None) -> tuple[dict[str, Any], int]:
        """One conditional UPDATE + its audit row (+ timer changes) in one transaction, or TicketError."""
        allowed, to_status, _, verb = ACTIONS[action]
        now = self.clock()
        values = {**values, "updated_at": now}
        if to_status:
            values["status"] = to_status
        seen_worker = ticket["worker_id"]
        cond = TICKETS.c.worker_id.is_(None) if seen_worker is None else TICKETS.c.worker_id == seen_worker
        async with self.engine.begin() as conn:
            if not await q.transition(conn, ticket["id"], [ticket["status"]], values, cond):
                fresh = await q.get(conn, ticket["id"])
                winner = None
                if fresh and fresh["worker_id"] and fresh["status"] in ("accepted", "in_progress"):
                    winner = await self.grids.worker(fresh["worker_id"])
                if action == "accept" and winner:
                    raise TicketError(TAKEN.format(id=ticket["id"], name=winner["name"]))
                status = STATUS_CN[fresh["status"]] if fresh else "已删除"
                raise TicketError(WRONG_STATE.format(id=ticket["id"], status=status, verb=verb))
            event_id = await q.add_event(conn, ticket["id"], now, actor, action, ticket["status"],
                                         to_status or ticket["status"], note, data)
            if timers:
                await timers(conn, ticket["id"])
            ends_takeover = ticket["kind"] == "human" and to_status is not None and to_status not in LIVE
            cut = False
            if ends_takeover:  # the conversation goes back to the bot with the ticket
                cut = await q.end_takeover(conn, ticket["id"], now, action)
            fresh = await q.get(conn, ticket["id"])
        assert fresh is not None
        if ends_takeover:
            self.takeovers.ended(fresh)
        if cut:  # a conversation with a worker was going on: the resident must not be left talking to nobody
            await self.takeovers.cut(ticket, fresh, action, event_id)
        return fresh, event_id

    async def act(self, ticket_id: int, worker: dict[str, Any], action: str, note: str = "",
                  target: int | None = None, hours: int | None = None) -> dict[str, Any]:
        """A worker's (or admin's) action from chat or the page; returns the updated ticket."""
        ticket = await self._load(ticket_id)
        await self._check_worker(action, ticket, worker)
        actor = f"worker:{worker['id']}"
        now = self.clock()
        if action == "accept":
            due = self.done_due(ticket["kind"], now)

            async def timers(conn: Any, tid: int) -> None:
                await q.cancel_timers(conn, tid)
                await q.add_timers(conn, tid, self._timers("done", now, due))

            fresh, event_id = await self._apply(ticket, action, actor, {
                "worker_id": worker["id"], "accepted_at": ticket["accepted_at"] or now, "done_due_at": due},
                note or None, timers=timers)
            live = await self.takeovers.start(fresh, worker)  # 转人工: the conversation is the worker's now
            await self._tell_resident(fresh, event_id, ACCEPTED_FOR_RESIDENT.format(
                id=fresh["id"], kind=KINDS[fresh["kind"]], item=_item(fresh), name=worker["name"],
                at=self.fmt(now), phone=worker["phone"]) + (INTRO if live else ""), "已接单")
            return fresh
        if action == "reply":
            if ticket["kind"] != "human":
                raise TicketError(REPLY_HUMAN_ONLY.format(id=ticket_id))
            if not note:
                raise TicketError(NEED_NOTE.format(what="回复内容", example=f"回复 {ticket_id} 您好，我是网格员，这就帮您问"))
            if len(note) > MAX_REPLY_CHARS:
                raise TicketError(REPLY_TOO_LONG.format(n=MAX_REPLY_CHARS))
            fresh, event_id = await self._apply(ticket, action, actor, {}, note)
            await self.takeovers.replied(fresh, worker, event_id, note)
            return fresh
        if action in ("start", "note"):
            if action == "note" and not note:
                raise TicketError(NEED_NOTE.format(what="备注内容", example=f"备注 {ticket_id} 已电话联系居民"))
            fresh, _ = await self._apply(ticket, action, actor, {}, note or None)
            return fresh
        if action == "done":
            if not note:
                raise TicketError(NEED_NOTE.format(what="办理结果", example=f"办结 {ticket_id} 已收材料并递交"))

            async def cancel(conn: Any, tid: int) -> None:
                await q.cancel_timers(conn, tid)

            fresh, event_id = await self._apply(ticket, action, actor, {"done_at": now}, note, timers=cancel)
            await self._tell_resident(fresh, event_id, DONE_FOR_RESIDENT.format(
                id=fresh["id"], kind=KINDS[fresh["kind"]], item=_item(fresh), at=self.fmt(now), note=note)
                + (DONE_NOTE if fresh["kind"] == "human" else ""), "已办结")
            await self._tell_followers(fresh, event_id)
            return fresh
        if action in ("transfer", "reassign"):
            if target is None:
                raise TicketError(NEED_NOTE.format(what="转给哪位网格员（编号）", example=f"转派 {ticket_id} 3"))
            other = await self.grids.worker(target)
            if other is None:
                raise TicketError(UNKNOWN_WORKER.format(id=target))
            return await self._route_again(ticket, action, actor, other, note)
        if action == "return":
            if not note:
                raise TicketError(NEED_NOTE.format(what="退单原因", example=f"退单 {ticket_id} 不是本网格的"))

            async def cancel_all(conn: Any, tid: int) -> None:
                await q.cancel_timers(conn, tid)

            fresh, event_id = await self._apply(ticket, action, actor, {}, note, timers=cancel_all)
            for admin in await self.grids.admins():
                await self._tell_worker(admin, fresh, event_id, RETURNED_FOR_ADMIN.format(
                    id=fresh["id"], name=worker["name"], note=note), "退单")
            return fresh
        if action == "extend":
            hours = hours or 24
            if not note:
                raise TicketError(NEED_NOTE.format(what="延期原因", example=f"延期 {ticket_id} 24 材料需补盖章"))
            fresh, event_id = await self._apply(ticket, action, actor, {"extension": "requested",
                                                                        "extension_hours": hours}, note,
                                                {"hours": hours})
            for admin in await self.grids.admins():
                await self._tell_worker(admin, fresh, event_id, EXTEND_FOR_ADMIN.format(
                    id=fresh["id"], name=worker["name"], hours=hours, note=note), "延期申请")
            return fresh
        if action in ("extend_ok", "extend_no"):
            if ticket["extension"] != "requested":
                raise TicketError(NO_EXTENSION.format(id=ticket_id))
            ok = action == "extend_ok"
            values: dict[str, Any] = {"extension": "approved" if ok else "refused"}
            timers_fn = None
            if ok:
                new_due = (ticket["done_due_at"] or now) + timedelta(hours=ticket["extension_hours"] or 24)
                values["done_due_at"] = new_due

                async def timers_fn(conn: Any, tid: int) -> None:  # type: ignore[no-redef]
                    await q.cancel_timers(conn, tid, ["done_warn", "done_due"])
                    await q.add_timers(conn, tid, self._timers("done", now, new_due))

            fresh, event_id = await self._apply(ticket, action, actor, values, note or None, timers=timers_fn)
            assignee = await self.grids.worker(fresh["worker_id"])
            if assignee:
                await self._tell_worker(assignee, fresh, event_id, EXTEND_DECIDED.format(
                    id=fresh["id"], result="已批准" if ok else "未获批准"), "延期审批")
            return fresh
        if action in CUSTODY:
            await self._check_custody(ticket, action, note)
            fresh, event_id = await self._apply(ticket, action, actor, {}, note, {"step": action})
            await self._tell_resident(fresh, event_id, CUSTODY_FOR_RESIDENT.format(
                name=worker["name"], what=CUSTODY[action], note=note, id=fresh["id"]), CUSTODY[action])
            return fresh
        raise TicketError(f"不支持的操作：{action}")

    async def _check_custody(self, ticket: dict[str, Any], action: str, note: str) -> None:
        """Documents change hands only on a 代办, with a list (or a photo's note), and in order:
        nothing can be handed in or given back before it was picked up."""
        tid = ticket["id"]
        if ticket["kind"] != "proxy":
            raise TicketError(CUSTODY_PROXY_ONLY.format(id=tid))
        if not note:
            raise TicketError(NEED_NOTE.format(what="材料清单（或在工单页面拍照登记）",
                                               example=f"{CUSTODY_VERBS[action]} {tid} 户口簿原件、身份证复印件2份"))
        if action != "pickup" and not any(e["action"] == "pickup" for e in await self.events(tid)):
            raise TicketError(CUSTODY_NO_PICKUP.format(id=tid))

    async def _route_again(self, ticket: dict[str, Any], action: str, actor: str, other: dict[str, Any],
                           note: str) -> dict[str, Any]:
        now = self.clock()
        due = self.accept_due(now)

        async def timers(conn: Any, tid: int) -> None:
            await q.cancel_timers(conn, tid)
            await q.add_timers(conn, tid, self._timers("accept", now, due))

        fresh, event_id = await self._apply(ticket, action, actor, {
            "worker_id": other["id"], "accept_due_at": due, "accepted_at": None}, note or None,
            {"to_worker": other["id"]}, timers=timers)
        await self._notify_assigned(fresh, event_id)
        return fresh

    async def cancel(self, openid: str, ticket_id: int) -> dict[str, Any]:
        ticket = await self._load(ticket_id)
        if ticket["openid"] != openid:
            raise TicketError(NOT_RESIDENTS.format(id=ticket_id))
        if ticket["status"] not in ACTIONS["cancel"][0]:
            raise TicketError(WRONG_STATE.format(id=ticket_id, status=STATUS_CN[ticket["status"]], verb="撤销"))

        async def cancel_all(conn: Any, tid: int) -> None:
            await q.cancel_timers(conn, tid)

        fresh, event_id = await self._apply(ticket, "cancel", f"resident:{openid}", {}, timers=cancel_all)
        assignee = await self.grids.worker(ticket["worker_id"])
        if assignee:
            await self._tell_worker(assignee, fresh, event_id, CANCELLED_FOR_WORKER.format(id=ticket_id), "已撤销")
        return fresh

    async def rate(self, openid: str, rating: str, ticket_id: int | None = None) -> dict[str, Any]:
        """满意/基本满意 close the ticket; 不满意 reopens it (重办) for the community admin."""
        if ticket_id is None:
            ticket = await self.latest_unrated(openid)
            if ticket is None:
                raise TicketError("您目前没有待评价的工单。")
        else:
            ticket = await self._load(ticket_id)
        if ticket["openid"] != openid:
            raise TicketError(NOT_RESIDENTS.format(id=ticket["id"]))
        if ticket["status"] != "done":
            raise TicketError(WRONG_STATE.format(id=ticket["id"], status=STATUS_CN[ticket["status"]], verb="评价"))
        now = self.clock()
        actor = f"resident:{openid}"
        if rating != "不满意":
            fresh, _ = await self._apply(ticket, "rate", actor, {"rating": rating, "rated_at": now}, rating)
            return fresh
        admins = await self.grids.admins()
        admin = next((a for a in admins if not a["on_leave"]), admins[0] if admins else None)
        due = self.accept_due(now)

        async def timers(conn: Any, tid: int) -> None:
            await q.cancel_timers(conn, tid)
            await q.add_timers(conn, tid, self._timers("accept", now, due))

        fresh, event_id = await self._apply(ticket, "reopen", actor, {
            "rating": rating, "rated_at": now, "reopened": ticket["reopened"] + 1, "accept_due_at": due,
            "accepted_at": None, "done_at": None, "worker_id": admin["id"] if admin else None},
            rating, timers=timers)
        if admin:
            await self._tell_worker(admin, fresh, event_id, REOPENED_FOR_ADMIN.format(
                id=fresh["id"], kind=KINDS[fresh["kind"]], item=_item(fresh)), "重办")
        return fresh

    async def confirm(self, openid: str, ticket_id: int | None = None) -> tuple[dict[str, Any], "Custody"]:
        """The resident confirms the last custody step (取件/交件/还件) of their 代办.

        Without a number, the newest of their tickets with a step still waiting for confirmation. The
        confirmation names the step's event, so a step recorded meanwhile is not confirmed by mistake;
        the worker who recorded the step is told."""
        if ticket_id is None:
            found = await self.awaiting_confirmation(openid)
            if found is None:
                raise TicketError(NOTHING_PENDING)
            ticket, custody = found
        else:
            ticket = await self._load(ticket_id)
            if ticket["openid"] != openid:
                raise TicketError(NOT_RESIDENTS.format(id=ticket_id))
            found_custody = custody_status(await self.events(ticket_id))
            if found_custody is None:
                raise TicketError(NOTHING_TO_CONFIRM.format(id=ticket_id))
            custody = found_custody
            if custody.confirmed:
                raise TicketError(ALREADY_CONFIRMED.format(id=ticket_id, what=CUSTODY[custody.step]))
        now = self.clock()
        async with self.engine.begin() as conn:
            event_id = await q.add_event(conn, ticket["id"], now, f"resident:{openid}", "confirm", ticket["status"],
                                         ticket["status"], f"确认{CUSTODY[custody.step]}",
                                         {"step": custody.step, "event": custody.event_id})
        by = await self.grids.worker(custody.worker_id) if custody.worker_id is not None else None
        if by:
            await self._tell_worker(by, ticket, event_id, CONFIRMED_FOR_WORKER.format(
                what=CUSTODY[custody.step], id=ticket["id"]), "居民确认")
        return ticket, replace(custody, confirmed=True)

    async def custody_of(self, ticket_ids: list[int]) -> dict[int, "Custody"]:
        """Where the documents of these tickets are (only tickets with a custody step are keys)."""
        async with self.engine.connect() as conn:
            events = await q.events_of_many(conn, ticket_ids, [*CUSTODY, "confirm"])
        by_ticket: dict[int, list[dict[str, Any]]] = {}
        for e in events:
            by_ticket.setdefault(e["ticket_id"], []).append(e)
        out = {}
        for tid, trail in by_ticket.items():
            status = custody_status(trail)
            if status is not None:
                out[tid] = status
        return out

    async def awaiting_confirmation(self, openid: str) -> tuple[dict[str, Any], "Custody"] | None:
        """The resident's newest 代办 whose last custody step they have not confirmed yet."""
        proxies = [t for t in await self.of_resident(openid, 10) if t["kind"] == "proxy"]
        custody = await self.custody_of([t["id"] for t in proxies])
        for t in proxies:
            c = custody.get(t["id"])
            if c is not None and not c.confirmed:
                return t, c
        return None

    async def of_kind(self, kind: str, open_only: bool = True, limit: int = 100) -> list[dict[str, Any]]:
        """Tickets of one kind, oldest first; open ones only unless ``open_only`` is False."""
        async with self.engine.connect() as conn:
            return await q.of_kind(conn, kind, list(q.OPEN) if open_only else None, limit)

    async def follow(self, openid: str, ticket_id: int) -> bool:
        async with self.engine.begin() as conn:
            added = await q.add_follower(conn, ticket_id, openid, self.clock())
            if added:
                ticket = await q.get(conn, ticket_id)
                await q.add_event(conn, ticket_id, self.clock(), f"resident:{openid}", "follow",
                                  ticket["status"] if ticket else None, ticket["status"] if ticket else None,
                                  "我也遇到了")
        return added

    async def similar_open_report(self, openid: str, grid_id: str | None, content: str,
                                  lat: float | None, lon: float | None) -> dict[str, Any] | None:
        """An open report of the same grid that is close by or reads alike ("我也遇到了")."""
        from rapidfuzz import fuzz

        tc = self.config.tickets
        async with self.engine.connect() as conn:
            candidates = await q.open_reports_near(conn, grid_id, self.clock() - timedelta(days=tc.nearby_days), openid)
        best: tuple[float, dict[str, Any]] | None = None
        for t in candidates:
            near = (lat is not None and t["latitude"] is not None
                    and _meters(lat, lon or 0.0, t["latitude"], t["longitude"] or 0.0) <= tc.nearby_meters)
            score = fuzz.partial_ratio(content, t["content"]) if content and t["content"] else 0.0
            if (near and (score >= 40 or not content)) or score >= 75:
                key = score + (50 if near else 0)
                if best is None or key > best[0]:
                    best = (key, t)
        return best[1] if best else None

    # ---- notifications ----------------------------------------------------------------------

    def page_url(self, ticket_id: int, worker_id: int) -> str:
        from urllib.parse import urlencode

        base = self.config.server.public_url.rstrip("/")
        return f"{base}/t/{ticket_id}?{urlencode(self.links.sign(ticket_id, worker_id, self.clock()))}"

    async def _send(self, openid: str, key: str, text: str, template_id: str, data: dict[str, Any],
                    url: str | None = None, to_worker: tuple[dict[str, Any], int, str] | None = None) -> None:
        """A template when ``template_id`` is set, else a customer-service text (with the link); to a
        worker (``to_worker`` = worker, ticket id, what) through :meth:`send_to_worker`."""
        if template_id:
            payload: dict[str, Any] = {"template_id": template_id, "data": data}
            if url:
                payload["url"] = url
            await self.outbox.enqueue(key, "template", payload, openid=openid, source="tickets")
            self._wake()
            return
        link = f"\n<a href=\"{url}\">打开工单</a>" if url else ""
        if to_worker is not None:
            worker, ticket_id, what = to_worker
            await self.send_to_worker(worker, ticket_id, key, text, what, link)
        else:
            await self.send_text(openid, key, text + link)

    async def send_text(self, openid: str, key: str, text: str) -> bool:
        """A customer-service text (chat, not a template: a 转人工 conversation); False when ``key`` was
        queued before (nothing is sent twice)."""
        queued = await self.outbox.enqueue(key, "custom", {"msgtype": "text", "text": {"content": text}},
                                           openid=openid, source="tickets")
        self._wake()
        return queued

    async def send_to_worker(self, worker: dict[str, Any], ticket_id: int, key: str, text: str, what: str,
                             link: str = "") -> bool:
        """A customer-service text (``text`` + ``link``) to a grid worker about a ticket, which reaches
        them even outside WeChat's 48-hour window when ``tickets.worker_template_id`` is set: the row
        carries that template for the sender to queue on a 45015, and when the worker's last message
        is known to be older than the window the template is queued instead, under the same ``key``
        (so the message is queued once whichever way it goes). False when ``key`` was queued before."""
        template_id = self.config.tickets.worker_template_id
        openid = worker.get("openid")
        if not openid:
            return False
        if not template_id:
            return await self.send_text(openid, key, text + link)
        template = self.worker_template(template_id, worker, ticket_id, what, text)
        async with self.engine.connect() as conn:
            last = await residents_q.last_inbound(conn, openid)
        if window_known_closed(last, self.clock()):
            queued = await self.outbox.enqueue(key, "template", template, openid=openid, source="tickets")
        else:
            queued = await self.outbox.enqueue(key, "custom", {"msgtype": "text", "text": {"content": text + link},
                                                               FALLBACK: template}, openid=openid, source="tickets")
        self._wake()
        return queued

    def worker_template(self, template_id: str, worker: dict[str, Any], ticket_id: int, what: str,
                        text: str) -> dict[str, Any]:
        """The template payload standing in for a customer-service text to a worker ("relay" and
        "assign" have their own headline): ticket number, the text, when, and the signed page link."""
        first = WORKER_TEMPLATE_FIRST.get(what, WORKER_TEMPLATE_OTHER).format(id=ticket_id)
        plain = re.sub(r"<[^>]+>", "", text).strip()
        if len(plain) > WORKER_TEMPLATE_CHARS:
            plain = plain[:WORKER_TEMPLATE_CHARS] + "…"
        data = {"first": {"value": first}, "keyword1": {"value": str(ticket_id)}, "keyword2": {"value": plain},
                "keyword3": {"value": self.fmt(self.clock())}, "remark": {"value": WORKER_TEMPLATE_REMARK}}
        return {"template_id": template_id, "data": data, "url": self.page_url(ticket_id, worker["id"])}

    async def _notify_assigned(self, ticket: dict[str, Any], event_id: int) -> None:
        worker = await self.grids.worker(ticket["worker_id"])
        if worker is None or not worker["openid"]:
            log.warning("ticket %s has no reachable assignee", ticket["id"])
            return
        detail = ticket["content"] or ""
        if ticket["checklist"]:
            detail = "材料：" + "；".join(ticket["checklist"]) + (f"\n上门时间：{ticket['time_window']}" if ticket["time_window"] else "")
        text = NEW_FOR_WORKER.format(id=ticket["id"], kind=KINDS[ticket["kind"]], item=_item(ticket),
                                     address=ticket["address"] or "—", phone=ticket["phone"] or "—",
                                     detail=detail, due=self.fmt(ticket["accept_due_at"]))
        data = {
            "first": {"value": f"新工单{ticket['id']}：{self.label(ticket)}"},
            "keyword1": {"value": str(ticket["id"])},
            "keyword2": {"value": self.label(ticket)},
            "keyword3": {"value": ticket["address"] or "—"},
            "keyword4": {"value": self.fmt(ticket["created_at"])},
            "remark": {"value": f"请在{self.fmt(ticket['accept_due_at'])}前接单，点开可接单、办结。"},
        }
        await self._send(worker["openid"], f"ticket:{ticket['id']}:{event_id}:assign:{worker['id']}", text,
                         self.config.tickets.assign_template_id, data, self.page_url(ticket["id"], worker["id"]),
                         to_worker=(worker, ticket["id"], "assign"))

    async def _tell_worker(self, worker: dict[str, Any], ticket: dict[str, Any], event_id: int, text: str,
                           what: str) -> None:
        if not worker.get("openid"):
            return
        data = {"first": {"value": text}, "keyword1": {"value": str(ticket["id"])},
                "keyword2": {"value": what}, "remark": {"value": ""}}
        await self._send(worker["openid"], f"ticket:{ticket['id']}:{event_id}:w{worker['id']}", text,
                         self.config.tickets.escalate_template_id, data, self.page_url(ticket["id"], worker["id"]),
                         to_worker=(worker, ticket["id"], what))

    async def _tell_resident(self, ticket: dict[str, Any], event_id: int, text: str, what: str) -> None:
        data = {"first": {"value": text}, "keyword1": {"value": str(ticket["id"])},
                "keyword2": {"value": what}, "remark": {"value": ""}}
        await self._send(ticket["openid"], f"ticket:{ticket['id']}:{event_id}:r", text,
                         self.config.tickets.progress_template_id, data)

    async def _tell_followers(self, ticket: dict[str, Any], event_id: int) -> None:
        async with self.engine.connect() as conn:
            followers = await q.followers_of(conn, ticket["id"])
        text = FIXED_FOR_FOLLOWER.format(id=ticket["id"], content=ticket["content"][:30], at=self.fmt(ticket["done_at"]))
        for openid in followers:
            await self.outbox.enqueue(f"ticket:{ticket['id']}:{event_id}:f:{openid}", "custom",
                                      {"msgtype": "text", "text": {"content": text}}, openid=openid, source="tickets")
        if followers:
            self._wake()

    # ---- timers -----------------------------------------------------------------------------

    async def run_due_timers(self, limit: int = 200) -> int:
        """Fire every due reminder/督办 once (claimed by conditional UPDATE); returns how many fired."""
        now = self.clock()
        async with self.engine.connect() as conn:
            due = await q.due_timers(conn, now, limit)
        fired = 0
        for timer in due:
            async with self.engine.begin() as conn:
                if not await q.claim_timer(conn, timer["id"]):
                    continue
                ticket = await q.get(conn, timer["ticket_id"])
                if ticket is None:
                    continue
                stage = timer["kind"].split("_")[0]
                still = ticket["status"] == "pending" if stage == "accept" else ticket["status"] in ("accepted", "in_progress")
                if not still:
                    continue
                escalate = timer["kind"].endswith("_due")
                event_id = await q.add_event(conn, ticket["id"], now, "system", "escalate" if escalate else "remind",
                                             ticket["status"], ticket["status"], timer["kind"], {"timer": timer["id"]})
            fired += 1
            await self._fire(ticket, timer["kind"], event_id)
        return fired

    async def _fire(self, ticket: dict[str, Any], kind: str, event_id: int) -> None:
        worker = await self.grids.worker(ticket["worker_id"])
        name = worker["name"] if worker else "（未分派）"
        if kind.endswith("_warn"):
            if worker:
                due = ticket["accept_due_at"] if kind.startswith("accept") else ticket["done_due_at"]
                template = REMIND_ACCEPT if kind.startswith("accept") else REMIND_DONE
                await self._tell_worker(worker, ticket, event_id, template.format(id=ticket["id"], due=self.fmt(due)),
                                        "提醒")
            return
        template = ESCALATE_ACCEPT if kind.startswith("accept") else ESCALATE_DONE
        text = template.format(id=ticket["id"], kind=KINDS[ticket["kind"]], item=_item(ticket), name=name)
        for admin in await self.grids.admins():
            await self._tell_worker(admin, ticket, event_id, text, "督办")

    # ---- report -----------------------------------------------------------------------------

    async def report(self, month: str, by: str = "worker") -> list[dict[str, Any]]:
        """响应率 (accepted within the limit), 解决率 (done), 满意率 (满意+基本满意 of rated), per worker or grid."""
        year, mon = (int(x) for x in month.split("-"))
        tz = self.calendar.tz
        start = datetime(year, mon, 1, tzinfo=tz)
        end = start + timedelta(days=monthrange(year, mon)[1])
        async with self.engine.connect() as conn:
            rows = await q.for_report(conn, start.astimezone(timezone.utc), end.astimezone(timezone.utc))
        groups: dict[Any, list[dict[str, Any]]] = {}
        for t in rows:
            groups.setdefault(t["worker_id"] if by == "worker" else t["grid_id"], []).append(t)
        out = []
        for key, tickets in sorted(groups.items(), key=lambda kv: str(kv[0])):
            total = len(tickets)
            in_time = sum(1 for t in tickets if t["accepted_at"] and t["accept_due_at"]
                          and t["accepted_at"] <= t["accept_due_at"])
            solved = sum(1 for t in tickets if t["status"] in ("done", "rated"))
            rated = [t for t in tickets if t["rating"]]
            good = sum(1 for t in rated if t["rating"] in ("满意", "基本满意"))
            name = str(key)
            if by == "worker":
                w = await self.grids.worker(key) if key is not None else None
                name = w["name"] if w else "（未分派）"
            else:
                g = await self.grids.grid(key) if key else None
                name = g["name"] if g else "（无网格）"
            out.append({"key": key, "name": name, "total": total, "response_rate": _rate(in_time, total),
                        "solve_rate": _rate(solved, total), "satisfaction_rate": _rate(good, len(rated)),
                        "rated": len(rated)})
        return out


IMAGE_MAGIC = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"), (b"GIF89a", "gif"))


def image_type(content: bytes) -> str | None:
    """"jpg", "png", "gif" or "webp" by the file's first bytes; None for anything else."""
    for magic, kind in IMAGE_MAGIC:
        if content.startswith(magic):
            return kind
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "webp"
    return None


def _write_file(folder: Path, name: str, content: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)


def _rate(n: int, d: int) -> float | None:
    return None if d == 0 else round(n / d, 4)


def _item(ticket: dict[str, Any]) -> str:
    return f"·{ticket['item_name']}" if ticket.get("item_name") else ""


def _meters(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    from math import asin, cos, radians, sin, sqrt

    dlat, dlon = radians(lat2 - lat1), radians(lon2 - lon1)
    a = sin(dlat / 2) ** 2 + cos(radians(lat1)) * cos(radians(lat2)) * sin(dlon / 2) ** 2
    return 6371000 * 2 * asin(sqrt(a))


def masked(ticket: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to show to someone who is not the assignee or an admin (and to log): phone and
    address cut, and phone or ID numbers the resident typed into the text masked too."""
    out = dict(ticket)
    if out.get("phone"):
        out["phone"] = mask_personal(out["phone"])
        if out["phone"] == ticket["phone"]:  # a landline or odd format mask_personal does not know
            out["phone"] = out["phone"][:3] + "****" + out["phone"][-2:]
    if out.get("address"):
        out["address"] = out["address"][:4] + "…"
    if out.get("content"):
        out["content"] = mask_personal(out["content"])
    return out


@dataclass(frozen=True)
class Custody:
    """The last custody step of a 代办: what happened, when, by whom, and whether the resident confirmed it."""

    step: str          # pickup / handin / giveback
    note: str
    at: datetime
    event_id: int
    worker_id: int | None
    confirmed: bool


def custody_status(events: list[dict[str, Any]]) -> Custody | None:
    """The documents' whereabouts from a ticket's audit trail (events in order), or None before any step."""
    last: Custody | None = None
    for e in events:
        if e["action"] in CUSTODY:
            actor = str(e["actor"])
            worker_id = int(actor.split(":")[1]) if actor.startswith("worker:") else None
            last = Custody(e["action"], e["note"] or "", e["at"], e["id"], worker_id, False)
        elif e["action"] == "confirm" and last is not None and (e["data"] or {}).get("event") == last.event_id:
            last = replace(last, confirmed=True)
    return last


# ---- wiring -------------------------------------------------------------------------------------


def setup_tickets(services: Any, clock: Callable[[], float] = time.time) -> Tickets:
    """Build the ticket service for ``services`` and start the timer poller (APScheduler).

    Any number of processes may poll: each timer row is claimed by a conditional UPDATE.
    """
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    config: Config = services.config
    outbound = getattr(services, "outbound", None)
    wake = outbound.sender.wake if outbound is not None else None
    def now() -> datetime:
        return datetime.fromtimestamp(clock(), timezone.utc)

    tickets = Tickets(services.engine, services.outbox, config, GridDirectory(services.engine, now),
                      ItemCatalog(config.app.faq_dir), clock=now, wake=wake, api=outbound.api if outbound else None)
    scheduler = AsyncIOScheduler(timezone=config.app.timezone)

    stopped = False
    running: set[asyncio.Task[Any]] = set()

    async def poll() -> None:
        # A run APScheduler queued just before shutdown must not touch a closing engine.
        if stopped:
            return
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        try:
            await tickets.run_due_timers()
            await tickets.takeovers.run_round()  # idle 转人工 conversations lapse; undelivered replies told
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("ticket timers round failed")
        finally:
            running.discard(task)

    scheduler.add_job(poll, "interval", seconds=config.tickets.timer_poll_seconds, id="ticket-timers",
                      max_instances=1, coalesce=True, next_run_time=datetime.now(timezone.utc))
    scheduler.start()

    async def close() -> None:
        """Let a round in flight finish (cancelling it mid-query can leave a database connection
        that never closes), then stop the scheduler and cancel what is left."""
        nonlocal stopped
        stopped = True
        if running:
            await asyncio.wait(list(running), timeout=5)
        scheduler.shutdown(wait=False)
        pending = [t for t in [*running, *tickets.tasks] if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)

    services.closers.append(close)
    tickets.scheduler = scheduler  # type: ignore[attr-defined]
    return tickets
