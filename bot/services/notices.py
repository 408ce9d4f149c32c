"""Scheduled community notices: definitions from files, subscriptions, scheduling and fan-out.

Why it is built this way:
- **Definitions are files** (``notices/<id>.toml``) an admin edits; ``notices add FILE`` validates them
  (every problem names file, line and field, located with ``bot.understanding.tomlfile``) and stores
  them with their planned pushes.
- **The push table is the job store.** APScheduler 3's ``SQLAlchemyJobStore`` is synchronous and
  pickles callables; we have async engines only (no sync PostgreSQL driver installed). So every push
  (publish, evening before, hour before, each repeat occurrence) is a row in ``notice_pushes``, and
  one APScheduler ``AsyncIOScheduler`` interval job calls :meth:`NoticeScheduler.tick`. Rows survive
  restarts; a tick claims due rows under a lease, so two scheduler processes never fan out the same
  push; a push found late beyond ``grace_minutes`` is marked ``missed`` instead of being sent.
- **Fan-out is resumable and idempotent.** Residents are walked in openid order in chunks; each chunk
  goes to the outbox with one idempotency key per (notice, push, resident), then the cursor is saved.
  A crash between the two re-queues the chunk and the outbox's unique key drops the duplicates: a
  restart neither re-sends nor skips anyone.
- **Opt-out at send time.** 退订 cancels the resident's notice rows still waiting in the outbox, and
  later chunks read the subscription afresh.
- **Quiet hours** (21:00–08:00 local) hold non-urgent pushes until morning; urgent categories (停水停电)
  go out at once, to everyone in the audience, subscribed or not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time as _time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import utcnow
from bot.config import Config, ConfigError, NoticesConfig
from bot.services.journal import Journal
from bot.services.outbox import Outbox
from bot.storage import notices as q
from bot.understanding.model import Problem
from bot.understanding.tomlfile import Path_, TomlDocument, read_toml

log = logging.getLogger(__name__)

CHANNELS = ("template", "subscribe", "custom")
PUSH_RULES = ("publish", "evening_before", "hour_before")
PUSH_ALIASES = {
    "publish": "publish", "发布时": "publish", "立即": "publish", "发布": "publish",
    "evening_before": "evening_before", "前一天晚上": "evening_before", "前一晚": "evening_before",
    "hour_before": "hour_before", "提前一小时": "hour_before", "前一小时": "hour_before",
}
FIELDS = {"id", "title", "category", "starts_at", "ends_at", "place", "text", "capacity", "link", "publish_at",
          "urgent", "audience", "push"}
AUDIENCE_FIELDS = {"all", "grids", "tags"}
PUSH_FIELDS = {"at", "repeat", "until"}
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,47}$")
WEEKDAYS = {"一": "mon", "二": "tue", "三": "wed", "四": "thu", "五": "fri", "六": "sat", "日": "sun", "天": "sun"}
PERIODS = {"上午": "08:00", "早上": "08:00", "中午": "12:00", "下午": "14:00", "晚上": "19:00"}
CRON_DOW_NAMES = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

# Short headers for each kind of push, shown first in the message.
PUSH_HEADERS = {"publish": "社区通知", "evening_before": "明天活动提醒", "hour_before": "活动1小时后开始",
                "repeat": "活动提醒"}
WEEKDAY_NAMES = "一二三四五六日"


# ---- settings -----------------------------------------------------------------------------------


def _split(value: str) -> list[str]:
    return [p.strip() for p in re.split(r"[,，;；、\s]+", value) if p.strip()]


def _pairs(value: str, key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in re.split(r"[;；,，]", value):
        if not part.strip():
            continue
        if "=" not in part:
            raise ConfigError(f"config: notices.{key}: expected 类别=值, got {part.strip()!r}")
        name, val = part.split("=", 1)
        out[name.strip()] = val.strip()
    return out


def _clock_time(value: str, key: str) -> time:
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ConfigError(f"config: notices.{key} must look like 21:00") from None


@dataclass(frozen=True)
class NoticeSettings:
    """``[notices]`` parsed and checked once: categories, channels, quiet hours, pacing."""

    tz: ZoneInfo
    categories: tuple[str, ...]
    urgent: frozenset[str]
    default_on: frozenset[str]
    quiet_start: time
    quiet_end: time
    evening: time
    grace: timedelta
    send_rate: float
    daily_cap: int
    chunk_size: int
    tick_seconds: float
    lease: timedelta
    custom_window: timedelta
    channels: dict[str, str]
    default_channel: str
    template_ids: dict[str, str]
    public_url: str = ""

    @classmethod
    def from_config(cls, config: Config) -> "NoticeSettings":
        n: NoticesConfig = config.notices
        categories = tuple(_split(n.categories))
        if not categories:
            raise ConfigError("config: notices.categories must name at least one category")
        channels = _pairs(n.channels, "channels")
        template_ids = _pairs(n.template_ids, "template_ids")
        for name, value in channels.items():
            if value not in CHANNELS:
                raise ConfigError(f"config: notices.channels: {name}={value}: channel must be one of {', '.join(CHANNELS)}")
        if n.default_channel not in CHANNELS:
            raise ConfigError(f"config: notices.default_channel must be one of {', '.join(CHANNELS)}")
        for key, names in (("urgent_categories", _split(n.urgent_categories)),
                           ("default_categories", _split(n.default_categories)),
                           ("channels", list(channels)), ("template_ids", list(template_ids))):
            unknown = [c for c in names if c not in categories]
            if unknown:
                raise ConfigError(f"config: notices.{key}: unknown category {unknown[0]} (not in notices.categories)")
        if n.chunk_size < 1:
            raise ConfigError("config: notices.chunk_size must be at least 1")
        try:
            tz = ZoneInfo(config.app.timezone)
        except Exception:  # noqa: BLE001
            raise ConfigError(f"config: app.timezone: unknown time zone {config.app.timezone}") from None
        return cls(
            tz=tz, categories=categories, urgent=frozenset(_split(n.urgent_categories)),
            default_on=frozenset(_split(n.default_categories)),
            quiet_start=_clock_time(n.quiet_start, "quiet_start"), quiet_end=_clock_time(n.quiet_end, "quiet_end"),
            evening=_clock_time(n.evening_time, "evening_time"), grace=timedelta(minutes=n.grace_minutes),
            send_rate=n.send_rate, daily_cap=n.daily_cap, chunk_size=n.chunk_size, tick_seconds=n.tick_seconds,
            lease=timedelta(seconds=n.lease_seconds), custom_window=timedelta(hours=n.custom_window_hours),
            channels=channels, default_channel=n.default_channel, template_ids=template_ids,
            public_url=config.server.public_url,
        )

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.tz)

    def in_quiet_hours(self, at: datetime) -> bool:
        t = self.local(at).time()
        if self.quiet_start <= self.quiet_end:
            return self.quiet_start <= t < self.quiet_end
        return t >= self.quiet_start or t < self.quiet_end

    def quiet_over(self, at: datetime) -> datetime:
        """The end of the quiet period containing ``at`` (next morning's ``quiet_end``), in UTC."""
        local = self.local(at)
        end = datetime.combine(local.date(), self.quiet_end, self.tz)
        if end <= local:
            end += timedelta(days=1)
        return end.astimezone(timezone.utc)

    def channel_for(self, category: str) -> tuple[str, str | None]:
        """(channel, template id). Template/subscribe without a template id fall back to custom."""
        channel = self.channels.get(category, self.default_channel)
        template_id = self.template_ids.get(category)
        if channel in ("template", "subscribe") and not template_id:
            return "custom", None
        return channel, template_id


# ---- definitions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoticeDef:
    """One notice file, validated. Times are UTC."""

    id: str
    title: str
    category: str
    text: str
    place: str = ""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    capacity: int | None = None
    link: str | None = None
    publish_at: datetime | None = None
    urgent: bool = False
    audience: dict[str, Any] = field(default_factory=lambda: {"all": True})
    push: tuple[str, ...] = ("publish",)
    repeat: str | None = None
    until: datetime | None = None
    source: str = ""


class NoticeFileError(Exception):
    """The file is not a valid notice; ``problems`` (in Chinese, for admins) say where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _local_dt(value: Any, tz: ZoneInfo) -> datetime | None:
    """A TOML local datetime (or "2025-06-14 09:00" string) in local time → aware UTC."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, time(23, 59))
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip().replace("/", "-"))
        except ValueError:
            return None
    else:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.astimezone(timezone.utc)


def parse_repeat(value: str) -> str:
    """A repeat rule → crontab with weekday names ("0 8 * * sat"). Raises ValueError (Chinese text).

    Accepts 每天 08:00, 每周六上午, 每周一、四 19:30, or a 5-field crontab. Numeric weekdays are refused:
    cron counts 0=Sunday and APScheduler 0=Monday, and an admin cannot be expected to know which.
    """
    text = value.strip()
    m = re.fullmatch(r"每(天|日|周([一二三四五六日天](?:[、,，]?[一二三四五六日天])*))\s*"
                     r"(上午|早上|中午|下午|晚上)?\s*(\d{1,2})?(?:[:：点](\d{2})?)?", text)
    if m:
        days = "*"
        if m.group(2):
            days = ",".join(dict.fromkeys(WEEKDAYS[c] for c in m.group(2) if c in WEEKDAYS))
        hour, minute = 8, 0
        if m.group(3):
            hour, minute = (int(x) for x in PERIODS[m.group(3)].split(":"))
        if m.group(4):
            hour = int(m.group(4))
            minute = int(m.group(5) or 0)
            if m.group(3) in ("下午", "晚上") and hour < 12:
                hour += 12
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError(f"时间不对：{text}")
        return f"{minute} {hour} * * {days}"
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"看不懂重复规则「{text}」；请写成「每周六上午」「每天 08:00」或 5 段 cron（如 0 8 * * sat）")
    dow = fields[4].lower()
    if dow != "*" and any(ch.isdigit() for ch in dow):
        raise ValueError("cron 的星期请用英文缩写（mon tue wed thu fri sat sun），不要用数字，以免周日/周一混淆")
    try:
        CronTrigger.from_crontab(" ".join(fields), timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"cron 规则「{text}」不对：{exc}") from None
    return " ".join(fields)


def next_occurrence(cron: str, after: datetime, tz: ZoneInfo) -> datetime | None:
    """The first fire time of ``cron`` (local time) strictly after ``after``, in UTC."""
    trigger = CronTrigger.from_crontab(cron, timezone=tz)
    fire = trigger.get_next_fire_time(None, after.astimezone(tz) + timedelta(seconds=1))
    return None if fire is None else fire.astimezone(timezone.utc)


def _str_list(doc: TomlDocument, path: Path_, value: Any, problems: list[Problem]) -> list[str]:
    if isinstance(value, (str, int)):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        problems.append(doc.problem(path, "应为文字列表，如 [\"1\", \"2\"]"))
        return []
    return [str(v).strip() for v in value if str(v).strip()]


def validate_notice(doc: TomlDocument, settings: NoticeSettings, default_id: str) -> NoticeDef | list[Problem]:
    """Check one parsed notice file; a :class:`NoticeDef`, or every problem found with its line."""
    data, problems = doc.data, []
    for key in data:
        if key not in FIELDS:
            problems.append(doc.problem((key,), f"未知的字段「{key}」（可用：{'、'.join(sorted(FIELDS))}）"))

    def text_field(key: str, required: bool, limit: int) -> str:
        value = data.get(key)
        if value is None:
            if required:
                problems.append(doc.problem((), f"缺少必填字段「{key}」"))
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            problems.append(doc.problem((key,), f"「{key}」应为非空文字"))
            return ""
        if len(value) > limit:
            problems.append(doc.problem((key,), f"「{key}」太长（{len(value)} 字，最多 {limit} 字）"))
        return value.strip()

    notice_id = data.get("id", default_id)
    if not isinstance(notice_id, str) or not ID_RE.match(notice_id):
        problems.append(doc.problem(("id",), "编号只能用英文字母、数字、- 和 _（最长 48 个字符）"))
    title = text_field("title", True, 100)
    body = text_field("text", True, 1500)
    place = text_field("place", False, 100)
    link = text_field("link", False, 500) or None
    if link and not link.startswith(("http://", "https://")):
        problems.append(doc.problem(("link",), "链接应以 http:// 或 https:// 开头"))
    category = text_field("category", True, 32)
    if category and category not in settings.categories:
        problems.append(doc.problem(("category",), f"未知的类别「{category}」（可用：{'、'.join(settings.categories)}）"))

    times: dict[str, datetime | None] = {}
    for key in ("starts_at", "ends_at", "publish_at"):
        raw = data.get(key)
        times[key] = None if raw is None else _local_dt(raw, settings.tz)
        if raw is not None and times[key] is None:
            problems.append(doc.problem((key,), f"「{key}」应为日期时间，如 2025-06-14T09:00:00"))
    if times["starts_at"] and times["ends_at"] and times["ends_at"] < times["starts_at"]:
        problems.append(doc.problem(("ends_at",), "结束时间早于开始时间"))

    capacity = data.get("capacity")
    if capacity is not None and (not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1):
        problems.append(doc.problem(("capacity",), "名额应为正整数"))
        capacity = None
    urgent = data.get("urgent", False)
    if not isinstance(urgent, bool):
        problems.append(doc.problem(("urgent",), "urgent 应为 true 或 false"))
        urgent = False

    audience: dict[str, Any] = {"all": True}
    raw_aud = data.get("audience", {"all": True})
    if not isinstance(raw_aud, dict):
        problems.append(doc.problem(("audience",), "audience 应为一个表，如 [audience] grids = [\"3\"]"))
    else:
        for key in raw_aud:
            if key not in AUDIENCE_FIELDS:
                problems.append(doc.problem(("audience", key), f"未知的字段「{key}」（可用：all、grids、tags）"))
        grids = _str_list(doc, ("audience", "grids"), raw_aud.get("grids", []), problems)
        tags = _str_list(doc, ("audience", "tags"), raw_aud.get("tags", []), problems)
        everyone = raw_aud.get("all", not (grids or tags))
        if not isinstance(everyone, bool):
            problems.append(doc.problem(("audience", "all"), "all 应为 true 或 false"))
        elif everyone and (grids or tags):
            problems.append(doc.problem(("audience", "all"), "all = true 时不要再写 grids 或 tags"))
        elif not everyone and not (grids or tags):
            problems.append(doc.problem(("audience",), "请写明发给谁：all = true，或 grids / tags"))
        audience = {"all": True} if everyone is True else {"grids": grids, "tags": tags}

    push: list[str] = []
    repeat: str | None = None
    until: datetime | None = None
    raw_push = data.get("push", {"at": ["publish"]})
    if not isinstance(raw_push, dict):
        problems.append(doc.problem(("push",), "push 应为一个表，如 [push] at = [\"发布时\", \"提前一小时\"]"))
    else:
        for key in raw_push:
            if key not in PUSH_FIELDS:
                problems.append(doc.problem(("push", key), f"未知的字段「{key}」（可用：at、repeat、until）"))
        for rule in _str_list(doc, ("push", "at"), raw_push.get("at", []), problems):
            canonical = PUSH_ALIASES.get(rule)
            if canonical is None:
                problems.append(doc.problem(("push", "at"), f"未知的推送时机「{rule}」（可用：发布时、前一天晚上、提前一小时）",
                                            needle=rule))
            elif canonical in ("evening_before", "hour_before") and times["starts_at"] is None:
                problems.append(doc.problem(("push", "at"), f"「{rule}」需要活动开始时间 starts_at", needle=rule))
            elif canonical not in push:
                push.append(canonical)
        if raw_push.get("repeat") is not None:
            if not isinstance(raw_push["repeat"], str):
                problems.append(doc.problem(("push", "repeat"), "repeat 应为文字，如 \"每周六上午\""))
            else:
                try:
                    repeat = parse_repeat(raw_push["repeat"])
                except ValueError as exc:
                    problems.append(doc.problem(("push", "repeat"), str(exc)))
        if raw_push.get("until") is not None:
            until = _local_dt(raw_push["until"], settings.tz)
            if until is None:
                problems.append(doc.problem(("push", "until"), "until 应为日期，如 2025-12-31"))
        if not push and repeat is None and "at" in raw_push:
            problems.append(doc.problem(("push", "at"), "至少需要一个推送时机"))
    if problems:
        return problems
    return NoticeDef(
        id=str(notice_id), title=title, category=category, text=body, place=place, starts_at=times["starts_at"],
        ends_at=times["ends_at"], capacity=capacity, link=link, publish_at=times["publish_at"],
        urgent=bool(urgent) or category in settings.urgent, audience=audience, push=tuple(push), repeat=repeat,
        until=until, source=doc.name,
    )


def load_notice_file(path: str | Path, settings: NoticeSettings) -> NoticeDef:
    """Read and validate ``path``; raises :class:`NoticeFileError` listing every problem."""
    p = Path(path)
    doc = read_toml(p, str(path))
    if isinstance(doc, Problem):
        raise NoticeFileError([doc])
    result = validate_notice(doc, settings, p.stem)
    if isinstance(result, list):
        raise NoticeFileError(result)
    return result


def planned_pushes(notice: NoticeDef, now: datetime, settings: NoticeSettings) -> list[tuple[str, datetime]]:
    """(push key, due time UTC) for the one-off rules; repeats are planned one occurrence at a time."""
    out: list[tuple[str, datetime]] = []
    for rule in notice.push:
        if rule == "publish":
            out.append(("publish", notice.publish_at or now))
        elif rule == "evening_before" and notice.starts_at:
            day = settings.local(notice.starts_at).date() - timedelta(days=1)
            out.append(("evening_before", datetime.combine(day, settings.evening, settings.tz).astimezone(timezone.utc)))
        elif rule == "hour_before" and notice.starts_at:
            out.append(("hour_before", notice.starts_at - timedelta(hours=1)))
    return out


def repeat_key(at: datetime, settings: NoticeSettings) -> str:
    return "r:" + settings.local(at).strftime("%Y-%m-%dT%H:%M")


# ---- message rendering --------------------------------------------------------------------------


def when_text(notice: dict[str, Any], settings: NoticeSettings) -> str:
    """6月14日（周六）09:00—11:30, in local time."""
    start = notice.get("starts_at")
    if not start:
        return ""
    s = settings.local(start)
    out = f"{s.month}月{s.day}日（周{WEEKDAY_NAMES[s.weekday()]}）{s:%H:%M}"
    end = notice.get("ends_at")
    if end:
        e = settings.local(end)
        out += f"—{e:%H:%M}" if e.date() == s.date() else f"—{e.month}月{e.day}日 {e:%H:%M}"
    return out


def push_kind(push_key: str) -> str:
    return "repeat" if push_key.startswith("r:") else push_key


def notice_text(notice: dict[str, Any], push_key: str, settings: NoticeSettings) -> str:
    """The customer-service text of a notice: what, when, where, then one clear next step."""
    lines = [f"【{PUSH_HEADERS[push_kind(push_key)]}·{notice['category']}】{notice['title']}"]
    when = when_text(notice, settings)
    if when:
        lines.append(f"时间：{when}")
    if notice.get("place"):
        lines.append(f"地点：{notice['place']}")
    lines.append(notice["body"])
    if notice.get("capacity"):
        lines.append(f"名额 {notice['capacity']} 个，回复「报名」参加。")
    if notice.get("link"):
        lines.append(f"详情：{notice['link']}")
    if notice["category"] not in settings.urgent:
        lines.append(f"回复「退订 {notice['category']}」不再接收此类通知。")
    return "\n".join(lines)


def payload_for(notice: dict[str, Any], push_key: str, channel: str, template_id: str | None,
                settings: NoticeSettings) -> dict[str, Any]:
    """The outbox payload for ``channel`` (shapes as ``bot.services.sender.deliver`` reads them)."""
    if channel == "custom":
        return {"msgtype": "text", "text": {"content": notice_text(notice, push_key, settings)}}
    when = when_text(notice, settings) or "见通知"
    if channel == "template":
        data = {
            "first": {"value": f"【{PUSH_HEADERS[push_kind(push_key)]}】{notice['title']}"},
            "keyword1": {"value": notice["category"]},
            "keyword2": {"value": when},
            "keyword3": {"value": notice.get("place") or "—"},
            "remark": {"value": notice["body"][:200]},
        }
        body: dict[str, Any] = {"template_id": template_id, "data": data}
        if notice.get("link"):
            body["url"] = notice["link"]
        return body
    data = {"thing1": {"value": notice["title"][:20]}, "time2": {"value": when[:20]},
            "thing3": {"value": (notice.get("place") or "见通知")[:20]},
            "thing4": {"value": notice["body"][:20]}}
    body = {"template_id": template_id, "data": data}
    if notice.get("link"):
        body["page"] = notice["link"]
    return body


# ---- the service --------------------------------------------------------------------------------


SleepFn = Callable[[float], Awaitable[None]]


@dataclass
class FanoutResult:
    status: str  # done / running / held / missed / cancelled / lost
    queued: int = 0
    note: str | None = None


class NoticeService:
    """Definitions, subscriptions, sign-ups and the scheduler tick, over one engine and outbox."""

    def __init__(self, engine: AsyncEngine, outbox: Outbox, settings: NoticeSettings, *,
                 clock: Callable[[], datetime] = utcnow, sleep: SleepFn = asyncio.sleep,
                 owner: str | None = None, on_queued: Callable[[], None] | None = None) -> None:
        self._engine = engine
        self._outbox = outbox
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self.owner = owner or f"notices-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.on_queued = on_queued  # wakes the outbox sender after a chunk is queued

    # ---- definitions ----

    async def add(self, notice: NoticeDef) -> list[dict[str, Any]]:
        """Store (or update) a notice and plan its pushes; returns the pushes as now planned."""
        now = self._clock()
        values = {
            "id": notice.id, "title": notice.title, "category": notice.category, "starts_at": notice.starts_at,
            "ends_at": notice.ends_at, "place": notice.place, "body": notice.text, "audience": notice.audience,
            "push": {"at": list(notice.push), "until": notice.until.isoformat() if notice.until else None},
            "repeat": notice.repeat, "capacity": notice.capacity, "taken": 0,
            "link": notice.link, "status": "published", "source": notice.source,
            "published_at": notice.publish_at or now, "updated_at": now,
        }
        async with self._engine.begin() as conn:
            await q.upsert_notice(conn, values)
            keys = []
            for key, due in planned_pushes(notice, now, self.settings):
                await q.schedule_push(conn, notice.id, key, due, notice.urgent)
                keys.append(key)
            if notice.repeat:
                keys.extend(await self._plan_repeat_on_add(conn, notice, now))
            await q.cancel_other_pushes(conn, notice.id, keys, now)
            return await q.pushes_of(conn, notice.id)

    async def _plan_repeat_on_add(self, conn: Any, notice: NoticeDef, now: datetime) -> list[str]:
        """Keep a repeat occurrence under way; otherwise (re)plan the next one from the rule as written."""
        latest = await q.latest_repeat_push(conn, notice.id)
        if latest is not None and latest["status"] == "running":
            return [latest["push_key"]]
        after = max(now, notice.publish_at or now) - timedelta(seconds=1)
        if latest is not None and latest["status"] in ("done", "missed"):
            after = max(after, latest["original_due_at"])
        nxt = next_occurrence(notice.repeat or "", after, self.settings.tz)
        if nxt is None or (notice.until is not None and nxt > notice.until):
            return []
        key = repeat_key(nxt, self.settings)
        await q.schedule_push(conn, notice.id, key, nxt, notice.urgent)
        return [key]

    async def get(self, notice_id: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            return await q.get_notice(conn, notice_id)

    async def list(self) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            return await q.list_notices(conn)

    async def pushes(self, notice_id: str) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            return await q.pushes_of(conn, notice_id)

    async def report(self, notice_id: str) -> dict[str, Any]:
        async with self._engine.connect() as conn:
            return await q.report(conn, notice_id)

    async def upcoming(self, limit: int = 5) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            return await q.upcoming_notices(conn, self._clock(), limit)

    # ---- subscriptions ----

    def match_categories(self, words: str) -> list[str]:
        """Categories named in ``words`` ("义诊 巡防" → 义诊, 平安巡防); substring match either way."""
        found: list[str] = []
        for word in _split(words):
            for category in self.settings.categories:
                if (word in category or category in word) and category not in found:
                    found.append(category)
        return found

    async def subscribe(self, openid: str, categories: Sequence[str]) -> None:
        async with self._engine.begin() as conn:
            await q.set_choice(conn, openid, categories, True, self._clock())

    async def unsubscribe(self, openid: str, categories: Sequence[str] | None) -> int:
        """退订 (None = all non-urgent categories). Effective at once, also for messages already queued."""
        chosen = [c for c in (categories or self.settings.categories) if c not in self.settings.urgent]
        now = self._clock()
        async with self._engine.begin() as conn:
            if chosen:
                await q.set_choice(conn, openid, chosen, False, now)
            return await q.cancel_pending_messages(conn, openid, chosen, now) if chosen else 0

    async def receiving(self, openid: str) -> list[str]:
        """Categories this resident receives now: chosen, on by default and not refused, or urgent."""
        async with self._engine.connect() as conn:
            chosen = await q.choices(conn, openid)
        return [c for c in self.settings.categories
                if c in self.settings.urgent or chosen.get(c, c in self.settings.default_on)]

    # ---- sign-ups ----

    async def open_signups(self) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            return await q.open_signup_notices(conn, self._clock())

    async def signup(self, notice_id: str, openid: str) -> str:
        async with self._engine.begin() as conn:
            return await q.signup(conn, notice_id, openid, self._clock())

    async def cancel_signup(self, notice_id: str, openid: str) -> tuple[str | None, str | None]:
        async with self._engine.begin() as conn:
            return await q.cancel_signup(conn, notice_id, openid, self._clock())

    async def signups(self, notice_id: str) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            return await q.signups_of(conn, notice_id)

    async def tell(self, openid: str, text: str, key: str) -> bool:
        """One customer-service message to one resident (e.g. promoted from the waiting list)."""
        stamp = self._clock().strftime("%Y%m%dT%H%M%S%f")
        queued = await self._outbox.enqueue(f"notices:{key}:{stamp}", "custom",
                                            {"msgtype": "text", "text": {"content": text}}, openid=openid,
                                            source="notices")
        if queued and self.on_queued:
            self.on_queued()
        return queued

    # ---- scheduling ----

    async def tick(self, limit: int = 10) -> list[tuple[dict[str, Any], FanoutResult]]:
        """One scheduler round: claim due pushes and run each (fan-out, hold, or mark missed)."""
        now = self._clock()
        async with self._engine.connect() as conn:  # read first: an idle tick never takes a write lock
            due = await q.next_due_at(conn)
        if due is None or due > now:
            return []
        async with self._engine.begin() as conn:
            pushes = await q.claim_due_pushes(conn, self.owner, now, now + self.settings.lease, limit)
        results = []
        for push in pushes:
            try:
                result = await self._run_push(push)
            except Exception:  # noqa: BLE001 - the lease runs out and another tick resumes from the cursor
                log.exception("notice push %s/%s failed", push["notice_id"], push["push_key"])
                result = FanoutResult("error")
            results.append((push, result))
        return results

    async def _finish(self, push: dict[str, Any], status: str, note: str | None = None) -> FanoutResult:
        now = self._clock()
        async with self._engine.begin() as conn:
            await q.finish_push(conn, push["id"], self.owner, status, now, note)
            notice = await q.get_notice(conn, push["notice_id"])
            if notice and notice.get("repeat") and push["push_key"].startswith("r:") and notice["status"] == "published":
                await self._plan_next_repeat(conn, notice, push, now)
        if status == "missed":
            log.warning("notice %s push %s missed: %s", push["notice_id"], push["push_key"], note)
        return FanoutResult(status, note=note)

    async def _plan_next_repeat(self, conn: Any, notice: dict[str, Any], push: dict[str, Any], now: datetime) -> None:
        after = max(push["original_due_at"], now - self.settings.grace)
        nxt = next_occurrence(notice["repeat"], after, self.settings.tz)
        until = (notice.get("push") or {}).get("until")
        if nxt is not None and (not until or nxt <= datetime.fromisoformat(until)):
            await q.schedule_push(conn, notice["id"], repeat_key(nxt, self.settings), nxt, push["urgent"])

    async def _run_push(self, push: dict[str, Any]) -> FanoutResult:
        now = self._clock()
        async with self._engine.connect() as conn:
            notice = await q.get_notice(conn, push["notice_id"])
        if notice is None or notice["status"] != "published":
            return await self._finish(push, "cancelled", "notice withdrawn")
        started = push["started_at"] is not None or push["cursor"] is not None
        if not started and now - push["due_at"] > self.settings.grace:
            return await self._finish(push, "missed", f"late by {now - push['due_at']} (grace {self.settings.grace})")
        reminder = push_kind(push["push_key"]) in ("evening_before", "hour_before")
        if not started and reminder and notice.get("starts_at") and notice["starts_at"] <= now:
            return await self._finish(push, "missed", "activity already started")
        if not push["urgent"] and self.settings.in_quiet_hours(now):
            morning = self.settings.quiet_over(now)
            if not started and reminder and notice.get("starts_at") and notice["starts_at"] <= morning:
                return await self._finish(push, "missed", "quiet hours last until the activity starts")
            async with self._engine.begin() as conn:
                await q.defer_push(conn, push["id"], self.owner, morning, "held: quiet hours")
            return FanoutResult("held", note="quiet hours")
        return await self._fan_out(push, notice)

    async def _fan_out(self, push: dict[str, Any], notice: dict[str, Any]) -> FanoutResult:
        s = self.settings
        channel, template_id = s.channel_for(notice["category"])
        urgent = bool(push["urgent"])
        default_on = notice["category"] in s.default_on
        cursor: str | None = push["cursor"]
        total = 0
        payloads: dict[str, dict[str, Any]] = {}
        while True:
            now = self._clock()
            day = s.local(now).date().isoformat()
            async with self._engine.connect() as conn:
                chunk = await q.target_chunk(conn, notice["audience"], notice["category"], urgent, default_on,
                                             cursor, s.chunk_size)
                room = s.daily_cap - await q.queued_on(conn, day) if s.daily_cap > 0 else len(chunk)
                seen = (await q.last_seen(conn, [o for o, _ in chunk], Journal.INBOUND_EVERY)
                        if channel == "custom" and chunk else {})
            if not chunk:
                return await self._finish(push, "done", f"queued {push['queued'] + total}")
            if room <= 0:
                tomorrow = datetime.combine(s.local(now).date() + timedelta(days=1), s.quiet_end, s.tz)
                async with self._engine.begin() as conn:
                    await q.defer_push(conn, push["id"], self.owner, tomorrow.astimezone(timezone.utc),
                                       "held: daily cap reached")
                return FanoutResult("held", total, "daily cap")
            chunk = chunk[:room]
            rows, skips = [], []
            for openid, choice in chunk:
                if not urgent and choice is False:
                    skips.append((openid, "opted_out"))
                    continue
                if channel == "custom" and (openid not in seen or now - seen[openid] > s.custom_window):
                    skips.append((openid, "no_channel_48h"))
                    continue
                payload = payloads.get(channel)
                if payload is None:
                    payload = payloads[channel] = payload_for(notice, push["push_key"], channel, template_id, s)
                rows.append({"idempotency_key": q.message_key(notice["id"], push["push_key"], openid),
                             "kind": channel, "payload": payload, "openid": openid,
                             "source": q.source_of(notice["id"], push["push_key"])})
            new = await self._outbox.enqueue_many(rows)
            cursor = chunk[-1][0]
            async with self._engine.begin() as conn:
                await q.add_skips(conn, notice["id"], push["push_key"], skips, now)
                await q.add_queued(conn, day, new)
                owned = await q.advance_push(conn, push["id"], self.owner, cursor, new, now, now + s.lease)
            total += new
            if self.on_queued and new:
                self.on_queued()
            if not owned:
                log.warning("notice push %s: lease lost; another scheduler continues", push["id"])
                return FanoutResult("lost", total)
            if s.send_rate > 0 and rows:
                await self._sleep(len(rows) / s.send_rate)


# ---- the scheduler (APScheduler) ----------------------------------------------------------------


class NoticeScheduler:
    """An ``AsyncIOScheduler`` with one interval job: :meth:`NoticeService.tick`.

    The job itself keeps no state (``notice_pushes`` is the persistent store), so the in-memory
    APScheduler job store is enough; ``max_instances=1`` and ``coalesce`` keep ticks from piling up
    behind a long fan-out, and leases keep several processes from sending the same batch.
    """

    def __init__(self, service: NoticeService, interval: float) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.service = service
        self.scheduler = AsyncIOScheduler(timezone=service.settings.tz)
        self.scheduler.add_job(self._tick, "interval", seconds=interval, id="notices-tick", max_instances=1,
                               coalesce=True, next_run_time=datetime.now(service.settings.tz))

        self._running: asyncio.Task[Any] | None = None
        self._stopped = False

    async def _tick(self) -> None:
        """Run ticks until nothing is due (a long fan-out then the next due push, without waiting)."""
        if self._stopped:  # a run APScheduler queued just before shutdown must not touch a closing engine
            return
        self._running = asyncio.current_task()
        try:
            while not self._stopped and await self.service.tick():
                pass
        finally:
            self._running = None

    def start(self) -> None:
        self.scheduler.start()

    async def stop(self) -> None:
        """Stop ticking and cancel a fan-out in flight; its lease lapses and the cursor resumes it."""
        self._stopped = True
        task = self._running
        if task is not None and not task.done():
            # A tick cut off mid-query can leave a database connection that never closes: give it
            # a moment to finish (a fan-out in flight checks the stop flag between chunks).
            await asyncio.wait({task}, timeout=5)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass


def setup_notices(config: Config, engine: AsyncEngine, outbox: Outbox,
                  clock: Callable[[], float] = _time.time) -> NoticeService:
    """Build the service (called from ``build_services``; the app's epoch clock drives it)."""
    return NoticeService(engine, outbox, NoticeSettings.from_config(config),
                         clock=lambda: datetime.fromtimestamp(clock(), timezone.utc))


def start_notices(services: Any, worker: int) -> NoticeScheduler | None:
    """Connect the service to this worker's outbox sender; start the scheduler in worker 0 only
    (unless ``notices.scheduler`` is off). Leases would make a second scheduler harmless, not useful."""
    notices: NoticeService = services.notices
    outbound = getattr(services, "outbound", None)
    if outbound is not None:
        notices.on_queued = outbound.sender.wake
    if worker != 0 or not services.config.notices.scheduler:
        return None
    scheduler = NoticeScheduler(notices, notices.settings.tick_seconds)
    scheduler.start()
    services.closers.append(scheduler.stop)
    return scheduler
