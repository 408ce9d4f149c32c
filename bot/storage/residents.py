"""Queries for residents (followers) and template delivery receipts."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from sqlalchemy import case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import as_utc
from bot.storage.db import upsert_insert
from bot.storage.models import Resident, TemplateReceipt

R = Resident.__table__
RECEIPTS = TemplateReceipt.__table__


def _upsert(conn: AsyncConnection, values: dict[str, object], update_cols: list[str]):  # type: ignore[no-untyped-def]
    ins = upsert_insert(conn, R).values(**values)
    return ins.on_conflict_do_update(index_elements=["openid"], set_={c: ins.excluded[c] for c in update_cols})


async def subscribe(conn: AsyncConnection, openid: str, scene: str | None, now: datetime) -> None:
    values: dict[str, object] = {"openid": openid, "subscribed": True, "subscribed_at": now, "last_seen_at": now}
    cols = ["subscribed", "subscribed_at", "last_seen_at"]
    if scene:
        values["scene"] = scene
        cols.append("scene")
    await conn.execute(_upsert(conn, values, cols))


async def unsubscribe(conn: AsyncConnection, openid: str, now: datetime) -> None:
    values = {"openid": openid, "subscribed": False, "unsubscribed_at": now}
    await conn.execute(_upsert(conn, values, ["subscribed", "unsubscribed_at"]))


async def set_scene(conn: AsyncConnection, openid: str, scene: str, now: datetime) -> None:
    await conn.execute(_upsert(conn, {"openid": openid, "scene": scene, "last_seen_at": now}, ["scene", "last_seen_at"]))


async def set_location(conn: AsyncConnection, openid: str, lat: float, lon: float, now: datetime) -> None:
    values = {"openid": openid, "latitude": lat, "longitude": lon, "last_seen_at": now}
    await conn.execute(_upsert(conn, values, ["latitude", "longitude", "last_seen_at"]))


async def get(conn: AsyncConnection, openid: str) -> dict[str, object] | None:
    row = (await conn.execute(select(R).where(R.c.openid == openid))).first()
    return None if row is None else dict(row._mapping)


async def add_receipt(conn: AsyncConnection, msgid: str, openid: str, status: str, now: datetime) -> None:
    await conn.execute(RECEIPTS.insert().values(wechat_msgid=msgid, openid=openid, status=status, received_at=now))


async def mark_unsubscribed_by_error(conn: AsyncConnection, openid: str, now: datetime) -> None:
    """WeChat said 43004 (not following): remember it so nobody keeps sending."""
    await conn.execute(update(R).where(R.c.openid == openid).values(subscribed=False, unsubscribed_at=now))


async def record_inbound(conn: AsyncConnection, rows: Sequence[tuple[str, datetime]]) -> None:
    """``last_inbound_at`` per openid, moved forward only (creating the row for an openid never seen).

    The portable form of what ``BatchWriter`` does in its own SQL on SQLite and asyncpg."""
    if not rows:
        return
    ins = upsert_insert(conn, R)
    newer = ins.excluded.last_inbound_at
    keep = case((or_(R.c.last_inbound_at.is_(None), R.c.last_inbound_at < newer), newer), else_=R.c.last_inbound_at)
    stmt = ins.on_conflict_do_update(index_elements=["openid"], set_={"last_inbound_at": keep})
    await conn.execute(stmt, [{"openid": o, "last_inbound_at": t} for o, t in rows])


async def last_inbound(conn: AsyncConnection, openid: str) -> datetime | None:
    """When ``openid`` last wrote to us as far as recorded (None: unknown)."""
    return as_utc((await conn.execute(select(R.c.last_inbound_at).where(R.c.openid == openid))).scalar_one_or_none())
