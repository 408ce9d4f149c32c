"""Shared pieces for the notice tests: a movable clock, a service over a test database, residents.

No tests here; the module is named like the others so it stays with them.
"""

from __future__ import annotations

import textwrap
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from bot.config import Config
from bot.services.notices import NoticeService, NoticeSettings, load_notice_file
from bot.services.outbox import Outbox
from bot.storage.db import create_engine
from bot.storage.models import Resident
from tests.conftest import make_config

TZ = ZoneInfo("Asia/Shanghai")
CATEGORIES = ("平安巡防", "人居环境整治", "义诊", "志愿服务", "政策宣传", "停水停电")


def local(*args: int) -> datetime:
    """A local (Asia/Shanghai) wall-clock time as aware UTC."""
    return datetime(*args, tzinfo=TZ).astimezone(timezone.utc)  # type: ignore[misc]


class Clock:
    """A datetime clock tests move by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def epoch(self) -> float:
        return self.now.timestamp()

    def set(self, at: datetime) -> None:
        self.now = at

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def notice_config(db_url: str, **notices: Any) -> Config:
    """Subscription notifications by default (no 48-hour window to think about in scheduling tests)."""
    values = {"send_rate": 0.0, "scheduler": False, "default_channel": "subscribe", "channels": "",
              "template_ids": ";".join(f"{c}=TPL-{i}" for i, c in enumerate(CATEGORIES)), **notices}
    return make_config(db_url, notices=values)


def write_notice(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


@asynccontextmanager
async def service_for(config: Config, clock: Clock, owner: str | None = None) -> AsyncIterator[NoticeService]:
    engine = create_engine(config.database.url)
    try:
        yield NoticeService(engine, Outbox(engine, clock=clock), NoticeSettings.from_config(config), clock=clock,
                            owner=owner)
    finally:
        await engine.dispose()


async def add_residents(service: NoticeService, openids: list[str], seen: datetime,
                        scenes: dict[str, str] | None = None) -> None:
    rows = [{"openid": o, "subscribed": True, "subscribed_at": seen, "last_seen_at": seen,
             "scene": (scenes or {}).get(o)} for o in openids]
    async with service._engine.begin() as conn:  # noqa: SLF001
        await conn.execute(insert(Resident.__table__), rows)


async def add_file(service: NoticeService, path: Path) -> list[dict[str, Any]]:
    return await service.add(load_notice_file(path, service.settings))


async def outbox_rows(service: NoticeService) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from bot.storage.models import OutboxMessage

    T = OutboxMessage.__table__
    async with service._engine.connect() as conn:  # noqa: SLF001
        return [dict(r._mapping) for r in await conn.execute(select(T).order_by(T.c.id))]


async def run_until_idle(service: NoticeService) -> list[tuple[dict[str, Any], Any]]:
    """Ticks until nothing due is left at the current time."""
    done = []
    while results := await service.tick():
        done.extend(results)
    return done


EVENT = """
    title = "免费义诊"
    category = "义诊"
    starts_at = 2030-06-15T09:00:00
    ends_at = 2030-06-15T11:30:00
    place = "便民服务站"
    text = "量血压、测血糖。"
    capacity = 3

    [push]
    at = ["发布时", "前一天晚上", "提前一小时"]
"""
