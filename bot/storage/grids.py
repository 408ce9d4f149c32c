"""Queries for grids, grid workers, residents' grids and worker invite codes (issue 4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.db import upsert_insert
from bot.storage.models import Grid, GridWorker, ResidentGrid, WorkerInvite

GRIDS = Grid.__table__
WORKERS = GridWorker.__table__
RESIDENT_GRIDS = ResidentGrid.__table__
INVITES = WorkerInvite.__table__


def _rows(result: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in result]


async def upsert_worker(conn: AsyncConnection, name: str, phone: str, role: str, now: datetime) -> int:
    """Workers are keyed by phone: re-importing keeps their id and their WeChat binding."""
    found = (await conn.execute(select(WORKERS.c.id).where(WORKERS.c.phone == phone))).scalar()
    if found is not None:
        await conn.execute(update(WORKERS).where(WORKERS.c.id == found).values(name=name, role=role))
        return int(found)
    result = await conn.execute(WORKERS.insert().values(name=name, phone=phone, role=role, on_leave=False,
                                                        created_at=now).returning(WORKERS.c.id))
    return int(result.scalar_one())


async def upsert_grid(conn: AsyncConnection, values: dict[str, Any]) -> None:
    ins = upsert_insert(conn, GRIDS).values(**values)
    cols = [c for c in values if c != "id"]
    await conn.execute(ins.on_conflict_do_update(index_elements=["id"], set_={c: ins.excluded[c] for c in cols}))


async def all_grids(conn: AsyncConnection) -> list[dict[str, Any]]:
    return _rows(await conn.execute(select(GRIDS).order_by(GRIDS.c.id)))


async def get_grid(conn: AsyncConnection, grid_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(GRIDS).where(GRIDS.c.id == grid_id))).first()
    return None if row is None else dict(row._mapping)


async def get_worker(conn: AsyncConnection, worker_id: int) -> dict[str, Any] | None:
    row = (await conn.execute(select(WORKERS).where(WORKERS.c.id == worker_id))).first()
    return None if row is None else dict(row._mapping)


async def worker_by_openid(conn: AsyncConnection, openid: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(WORKERS).where(WORKERS.c.openid == openid))).first()
    return None if row is None else dict(row._mapping)


async def worker_by_phone(conn: AsyncConnection, phone: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(WORKERS).where(WORKERS.c.phone == phone))).first()
    return None if row is None else dict(row._mapping)


async def workers_with_role(conn: AsyncConnection, role: str) -> list[dict[str, Any]]:
    return _rows(await conn.execute(select(WORKERS).where(WORKERS.c.role == role).order_by(WORKERS.c.id)))


async def all_workers(conn: AsyncConnection) -> list[dict[str, Any]]:
    return _rows(await conn.execute(select(WORKERS).order_by(WORKERS.c.id)))


async def set_leave(conn: AsyncConnection, worker_id: int, on_leave: bool) -> None:
    await conn.execute(update(WORKERS).where(WORKERS.c.id == worker_id).values(on_leave=on_leave))


async def grids_of_worker(conn: AsyncConnection, worker_id: int) -> list[str]:
    """Grids where the worker is the worker or the backup: the tickets they may see."""
    rows = await conn.execute(select(GRIDS.c.id).where((GRIDS.c.worker_id == worker_id)
                                                       | (GRIDS.c.backup_id == worker_id)))
    return [r[0] for r in rows]


async def resident_grid(conn: AsyncConnection, openid: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(RESIDENT_GRIDS).where(RESIDENT_GRIDS.c.openid == openid))).first()
    return None if row is None else dict(row._mapping)


async def save_resident(conn: AsyncConnection, openid: str, now: datetime, **values: Any) -> None:
    """Upsert the resident's grid row, changing only the given columns."""
    ins = upsert_insert(conn, RESIDENT_GRIDS).values(openid=openid, updated_at=now, **values)
    cols = [*values, "updated_at"]
    await conn.execute(ins.on_conflict_do_update(index_elements=["openid"], set_={c: ins.excluded[c] for c in cols}))


async def add_invite(conn: AsyncConnection, code_hash: str, worker_id: int, expires_at: datetime) -> None:
    await conn.execute(INVITES.insert().values(code_hash=code_hash, worker_id=worker_id, expires_at=expires_at))


async def use_invite(conn: AsyncConnection, code_hash: str, openid: str, now: datetime) -> int | None:
    """Spend a code (once: conditional UPDATE); the worker id, or None when unknown, used or expired."""
    result = await conn.execute(
        update(INVITES)
        .where(INVITES.c.code_hash == code_hash, INVITES.c.used_at.is_(None), INVITES.c.expires_at > now)
        .values(used_at=now, used_by=openid)
        .returning(INVITES.c.worker_id)
    )
    found = result.scalar()
    return None if found is None else int(found)


async def bind_worker(conn: AsyncConnection, worker_id: int, openid: str) -> None:
    """One WeChat account per worker row: a previous binding of this openid is released first."""
    await conn.execute(update(WORKERS).where(WORKERS.c.openid == openid).values(openid=None))
    await conn.execute(update(WORKERS).where(WORKERS.c.id == worker_id).values(openid=openid))
