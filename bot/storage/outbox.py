"""Queries for the outbox: claiming due rows under a lease, and recording each attempt's outcome.

Why a lease and not a long transaction: a send can take seconds, and holding row locks (or SQLite's
single write lock) across HTTP calls would stall every other writer. Claiming is one atomic UPDATE that
stamps ``lease_owner``/``lease_until`` on rows that are due and not leased; PostgreSQL picks them with
``FOR UPDATE SKIP LOCKED`` so concurrent senders take different rows instead of queueing behind each
other; SQLite runs the whole UPDATE under its write lock, which gives the same exactly-once claim.
Every outcome is written only while we still own the lease (``WHERE lease_owner = :owner``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import and_, exists, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import as_utc
from bot.storage.models import OutboxAttempt, OutboxMessage

T = OutboxMessage.__table__
ATTEMPTS = OutboxAttempt.__table__


def _lease_free(table: Any, now: datetime) -> Any:
    return or_(table.c.lease_until.is_(None), table.c.lease_until < now)


def _blocked_by_earlier(candidate: Any, now: datetime) -> Any:
    """An earlier pending row of the same resident and kind is waiting or in flight: keep the order.

    Without this a reply split into parts could arrive 2-1 when part 1 is being retried.
    """
    p = T.alias("earlier")
    return exists().where(
        p.c.openid == candidate.c.openid,
        p.c.kind == candidate.c.kind,
        p.c.status == "pending",
        p.c.id < candidate.c.id,
        or_(p.c.next_attempt_at > now, and_(p.c.lease_until.is_not(None), p.c.lease_until >= now)),
    )


async def claim_due(conn: AsyncConnection, owner: str, now: datetime, lease_until: datetime, limit: int,
                    ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Lease up to ``limit`` due rows to ``owner``; returns them oldest first. ``ids`` narrows the pick."""
    c = T.alias("candidate")
    pick = (
        select(c.c.id)
        .where(c.c.status == "pending", c.c.next_attempt_at <= now, _lease_free(c, now), ~_blocked_by_earlier(c, now))
        .order_by(c.c.next_attempt_at, c.c.id)
        .limit(limit)
    )
    if ids is not None:
        pick = pick.where(c.c.id.in_(list(ids)))
    if conn.dialect.name == "postgresql":
        # A CTE, not ``id IN (subquery)``: PostgreSQL may re-run a locking subquery per outer row, and
        # each re-run skips the rows it has just locked itself — the LIMIT would then mean nothing.
        picked = pick.with_for_update(skip_locked=True, of=c).cte("picked")
        chosen: Any = T.c.id == picked.c.id
    else:
        chosen = T.c.id.in_(pick.scalar_subquery())  # SQLite: one statement under the write lock
    stmt = (
        update(T)
        .where(chosen, T.c.status == "pending", _lease_free(T, now))
        .values(lease_owner=owner, lease_until=lease_until)
        .returning(*T.c)
    )
    rows = [dict(r._mapping) for r in (await conn.execute(stmt)).all()]
    for row in rows:
        for key in ("next_attempt_at", "lease_until", "created_at", "sent_at"):
            row[key] = as_utc(row[key])
    rows.sort(key=lambda r: (r["next_attempt_at"], r["id"]))
    return rows


def _owned(row_id: int, owner: str) -> Any:
    return and_(T.c.id == row_id, T.c.lease_owner == owner, T.c.status == "pending")


async def mark_sent(conn: AsyncConnection, row_id: int, owner: str, now: datetime, msgid: str | None) -> bool:
    result = await conn.execute(
        update(T).where(_owned(row_id, owner)).values(
            status="sent", sent_at=now, attempts=T.c.attempts + 1, errcode=0, error=None, wechat_msgid=msgid,
            lease_owner=None, lease_until=None)
    )
    return result.rowcount == 1


async def mark_retry(conn: AsyncConnection, row_id: int, owner: str, next_at: datetime, errcode: int | None,
                     error: str) -> bool:
    result = await conn.execute(
        update(T).where(_owned(row_id, owner)).values(
            attempts=T.c.attempts + 1, next_attempt_at=next_at, errcode=errcode, error=error,
            lease_owner=None, lease_until=None)
    )
    return result.rowcount == 1


async def mark_failed(conn: AsyncConnection, row_id: int, owner: str, errcode: int | None, error: str) -> bool:
    result = await conn.execute(
        update(T).where(_owned(row_id, owner)).values(
            status="failed", attempts=T.c.attempts + 1, errcode=errcode, error=error,
            lease_owner=None, lease_until=None)
    )
    return result.rowcount == 1


async def release(conn: AsyncConnection, row_ids: Sequence[int], owner: str, not_before: datetime | None = None) -> None:
    """Give rows back unsent (shutting down, or held back behind a failed earlier part)."""
    if not row_ids:
        return
    values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
    if not_before is not None:
        values["next_attempt_at"] = not_before
    await conn.execute(update(T).where(T.c.id.in_(list(row_ids)), T.c.lease_owner == owner).values(**values))


async def add_attempt(conn: AsyncConnection, outbox_id: int, at: datetime, errcode: int | None, error: str | None,
                      duration_ms: float) -> None:
    await conn.execute(insert(ATTEMPTS).values(outbox_id=outbox_id, at=at, errcode=errcode, error=error,
                                                duration_ms=duration_ms))


async def get(conn: AsyncConnection, row_id: int) -> dict[str, Any] | None:
    row = (await conn.execute(select(T).where(T.c.id == row_id))).first()
    return None if row is None else dict(row._mapping)


async def attempts_of(conn: AsyncConnection, outbox_id: int) -> list[dict[str, Any]]:
    rows = await conn.execute(select(ATTEMPTS).where(ATTEMPTS.c.outbox_id == outbox_id).order_by(ATTEMPTS.c.id))
    return [dict(r._mapping) for r in rows]


async def id_by_key(conn: AsyncConnection, key: str) -> int:
    return int((await conn.execute(select(T.c.id).where(T.c.idempotency_key == key))).scalar_one())
