"""Queries for tickets, their audit trail, due timers and followers (issue 4).

Every status change is one conditional UPDATE (``WHERE id = :id AND status IN (:allowed)``): the
database decides who wins when two people act on one ticket at once, and the loser sees rowcount 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import as_utc
from bot.storage.db import upsert_insert
from bot.storage.models import Ticket, TicketEvent, TicketFollower, TicketTakeover, TicketTimer

T = Ticket.__table__
EVENTS = TicketEvent.__table__
TIMERS = TicketTimer.__table__
FOLLOWERS = TicketFollower.__table__
TAKEOVERS = TicketTakeover.__table__

OPEN = ("pending", "accepted", "in_progress", "returned")
_TIME_COLS = ("created_at", "updated_at", "accept_due_at", "done_due_at", "accepted_at", "done_at", "rated_at")


def _ticket(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for key in _TIME_COLS:
        if key in out:
            out[key] = as_utc(out[key])
    return out


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> int:
    return int((await conn.execute(T.insert().values(**values).returning(T.c.id))).scalar_one())


async def get(conn: AsyncConnection, ticket_id: int) -> dict[str, Any] | None:
    row = (await conn.execute(select(T).where(T.c.id == ticket_id))).first()
    return None if row is None else _ticket(row)


async def find_duplicate(conn: AsyncConnection, fingerprint: str, since: datetime) -> dict[str, Any] | None:
    row = (await conn.execute(
        select(T).where(T.c.fingerprint == fingerprint, T.c.created_at >= since, T.c.status.in_(OPEN))
        .order_by(T.c.id.desc()).limit(1)
    )).first()
    return None if row is None else _ticket(row)


async def transition(conn: AsyncConnection, ticket_id: int, allowed: Iterable[str], values: dict[str, Any],
                     *conditions: Any) -> bool:
    """Change the row only if its status is still one of ``allowed`` (and ``conditions`` hold)."""
    result = await conn.execute(
        update(T).where(T.c.id == ticket_id, T.c.status.in_(list(allowed)), *conditions).values(**values)
    )
    return result.rowcount == 1


async def set_values(conn: AsyncConnection, ticket_id: int, values: dict[str, Any]) -> None:
    await conn.execute(update(T).where(T.c.id == ticket_id).values(**values))


async def lock(conn: AsyncConnection, ticket_id: int) -> None:
    """Hold the ticket's row until this transaction ends, before a read-modify-write of it.

    A no-op UPDATE is the one statement that locks on both backends: PostgreSQL takes the row lock
    (a second locker waits, then reads the committed row), SQLite takes its write lock at once (a
    SELECT alone would not even start a transaction there, so two writers would read the same list).
    """
    await conn.execute(update(T).where(T.c.id == ticket_id).values(media=T.c.media))


async def add_event(conn: AsyncConnection, ticket_id: int, at: datetime, actor: str, action: str,
                    from_status: str | None, to_status: str | None, note: str | None = None,
                    data: dict[str, Any] | None = None) -> int:
    result = await conn.execute(EVENTS.insert().values(
        ticket_id=ticket_id, at=at, actor=actor, action=action, from_status=from_status, to_status=to_status,
        note=note, data=data).returning(EVENTS.c.id))
    return int(result.scalar_one())


async def events_of(conn: AsyncConnection, ticket_id: int) -> list[dict[str, Any]]:
    rows = await conn.execute(select(EVENTS).where(EVENTS.c.ticket_id == ticket_id).order_by(EVENTS.c.id))
    return [{**dict(r._mapping), "at": as_utc(r.at)} for r in rows]


async def events_of_many(conn: AsyncConnection, ticket_ids: Sequence[int], actions: Sequence[str]
                         ) -> list[dict[str, Any]]:
    """The events with these actions of several tickets at once, in order (one query for a list page)."""
    if not ticket_ids:
        return []
    rows = await conn.execute(select(EVENTS).where(EVENTS.c.ticket_id.in_(list(ticket_ids)),
                                                   EVENTS.c.action.in_(list(actions))).order_by(EVENTS.c.id))
    return [{**dict(r._mapping), "at": as_utc(r.at)} for r in rows]


async def open_for_worker(conn: AsyncConnection, worker_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The worker's open tickets, oldest first (served by ix_tickets_worker_open)."""
    rows = await conn.execute(
        select(T).where(T.c.worker_id == worker_id, T.c.status.in_(("pending", "accepted", "in_progress")))
        .order_by(T.c.created_at, T.c.id).limit(limit))
    return [_ticket(r) for r in rows]


async def count_open_for_worker(conn: AsyncConnection, worker_id: int) -> int:
    return int((await conn.execute(
        select(func.count()).select_from(T)
        .where(T.c.worker_id == worker_id, T.c.status.in_(("pending", "accepted", "in_progress"))))).scalar_one())


async def of_resident(conn: AsyncConnection, openid: str, limit: int = 5) -> list[dict[str, Any]]:
    rows = await conn.execute(select(T).where(T.c.openid == openid).order_by(T.c.id.desc()).limit(limit))
    return [_ticket(r) for r in rows]


async def of_kind(conn: AsyncConnection, kind: str, statuses: Sequence[str] | None, limit: int) -> list[dict[str, Any]]:
    """Tickets of one kind, oldest first (whoever has waited longest comes first)."""
    query = select(T).where(T.c.kind == kind).order_by(T.c.created_at, T.c.id).limit(limit)
    if statuses is not None:
        query = query.where(T.c.status.in_(list(statuses)))
    return [_ticket(r) for r in await conn.execute(query)]


async def latest_unrated(conn: AsyncConnection, openid: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(T).where(T.c.openid == openid, T.c.status == "done")
                              .order_by(T.c.done_at.desc(), T.c.id.desc()).limit(1))).first()
    return None if row is None else _ticket(row)


async def open_reports_near(conn: AsyncConnection, grid_id: str | None, since: datetime,
                            exclude_openid: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(T).where(T.c.kind == "report", T.c.status.in_(OPEN), T.c.created_at >= since,
                        T.c.openid != exclude_openid,
                        T.c.grid_id.is_(None) if grid_id is None else T.c.grid_id == grid_id)
        .order_by(T.c.id.desc()).limit(50))
    return [_ticket(r) for r in rows]


async def returned_tickets(conn: AsyncConnection, limit: int = 20) -> list[dict[str, Any]]:
    rows = await conn.execute(select(T).where(T.c.status == "returned").order_by(T.c.id).limit(limit))
    return [_ticket(r) for r in rows]


# ---- timers -------------------------------------------------------------------------------------


async def add_timers(conn: AsyncConnection, ticket_id: int, timers: Sequence[tuple[str, datetime]]) -> None:
    if timers:
        await conn.execute(TIMERS.insert(), [{"ticket_id": ticket_id, "kind": k, "due_at": d, "state": "waiting"}
                                             for k, d in timers])


async def cancel_timers(conn: AsyncConnection, ticket_id: int, kinds: Iterable[str] | None = None) -> None:
    stmt = update(TIMERS).where(TIMERS.c.ticket_id == ticket_id, TIMERS.c.state == "waiting")
    if kinds is not None:
        stmt = stmt.where(TIMERS.c.kind.in_(list(kinds)))
    await conn.execute(stmt.values(state="cancelled"))


async def due_timers(conn: AsyncConnection, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
    rows = await conn.execute(select(TIMERS).where(TIMERS.c.state == "waiting", TIMERS.c.due_at <= now)
                              .order_by(TIMERS.c.due_at, TIMERS.c.id).limit(limit))
    return [{**dict(r._mapping), "due_at": as_utc(r.due_at)} for r in rows]


async def claim_timer(conn: AsyncConnection, timer_id: int) -> bool:
    """Exactly one process fires a timer: the one whose UPDATE still finds it waiting."""
    result = await conn.execute(update(TIMERS).where(TIMERS.c.id == timer_id, TIMERS.c.state == "waiting")
                                .values(state="fired"))
    return result.rowcount == 1


async def timers_of(conn: AsyncConnection, ticket_id: int) -> list[dict[str, Any]]:
    rows = await conn.execute(select(TIMERS).where(TIMERS.c.ticket_id == ticket_id).order_by(TIMERS.c.id))
    return [{**dict(r._mapping), "due_at": as_utc(r.due_at)} for r in rows]


# ---- followers ("我也遇到了") ---------------------------------------------------------------------


async def add_follower(conn: AsyncConnection, ticket_id: int, openid: str, now: datetime) -> bool:
    ins = upsert_insert(conn, FOLLOWERS)
    result = await conn.execute(ins.values(ticket_id=ticket_id, openid=openid, created_at=now)
                                .on_conflict_do_nothing(index_elements=["ticket_id", "openid"]))
    return result.rowcount == 1


async def followers_of(conn: AsyncConnection, ticket_id: int) -> list[str]:
    rows = await conn.execute(select(FOLLOWERS.c.openid).where(FOLLOWERS.c.ticket_id == ticket_id))
    return [r[0] for r in rows]


# ---- takeovers (转人工 conversations a worker has taken over) -------------------------------------

_TAKEOVER_TIMES = ("started_at", "active_at", "acked_at", "ended_at")


def _takeover(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for key in _TAKEOVER_TIMES:
        out[key] = as_utc(out[key])
    return out


async def open_takeover(conn: AsyncConnection, ticket_id: int, openid: str, worker_id: int, now: datetime,
                        acked: bool = False) -> None:
    """Start (or restart) the takeover of a ticket by ``worker_id`` (``acked``: the resident was just told)."""
    values = {"worker_id": worker_id, "started_at": now, "active_at": now, "acked_at": now if acked else None,
              "ended_at": None, "end_reason": None}
    ins = upsert_insert(conn, TAKEOVERS).values(ticket_id=ticket_id, openid=openid, **values)
    await conn.execute(ins.on_conflict_do_update(index_elements=["ticket_id"], set_=values))


async def touch_takeover(conn: AsyncConnection, ticket_id: int, values: dict[str, Any]) -> bool:
    """Update a takeover that is still going on (False when it has ended meanwhile)."""
    result = await conn.execute(update(TAKEOVERS).where(TAKEOVERS.c.ticket_id == ticket_id,
                                                        TAKEOVERS.c.ended_at.is_(None)).values(**values))
    return result.rowcount == 1


async def end_takeover(conn: AsyncConnection, ticket_id: int, now: datetime, reason: str,
                       idle_since: datetime | None = None) -> bool:
    """End a takeover once; with ``idle_since`` only if nothing happened since then (a lapse must not
    end a conversation a message just refreshed)."""
    stmt = update(TAKEOVERS).where(TAKEOVERS.c.ticket_id == ticket_id, TAKEOVERS.c.ended_at.is_(None))
    if idle_since is not None:
        stmt = stmt.where(TAKEOVERS.c.active_at < idle_since)
    result = await conn.execute(stmt.values(ended_at=now, end_reason=reason))
    return result.rowcount == 1


async def takeovers_of(conn: AsyncConnection, ticket_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    if not ticket_ids:
        return {}
    rows = await conn.execute(select(TAKEOVERS).where(TAKEOVERS.c.ticket_id.in_(list(ticket_ids))))
    return {int(r.ticket_id): _takeover(r) for r in rows}


async def live_takeovers_of(conn: AsyncConnection, openid: str) -> list[dict[str, Any]]:
    """The resident's takeovers still going on, the most recently active first."""
    rows = await conn.execute(select(TAKEOVERS).where(TAKEOVERS.c.openid == openid, TAKEOVERS.c.ended_at.is_(None))
                              .order_by(TAKEOVERS.c.active_at.desc(), TAKEOVERS.c.ticket_id.desc()))
    return [_takeover(r) for r in rows]


async def live_takeover_keys(conn: AsyncConnection) -> list[tuple[str, int]]:
    """(openid, ticket id) of every takeover going on: the few residents whose messages go to a person."""
    rows = await conn.execute(select(TAKEOVERS.c.openid, TAKEOVERS.c.ticket_id).where(TAKEOVERS.c.ended_at.is_(None)))
    return [(r.openid, int(r.ticket_id)) for r in rows]


async def idle_takeovers(conn: AsyncConnection, idle_since: datetime, limit: int = 100) -> list[dict[str, Any]]:
    rows = await conn.execute(select(TAKEOVERS).where(TAKEOVERS.c.ended_at.is_(None),
                                                      TAKEOVERS.c.active_at < idle_since)
                              .order_by(TAKEOVERS.c.active_at).limit(limit))
    return [_takeover(r) for r in rows]


async def recent_takeovers(conn: AsyncConnection, since: datetime, limit: int = 500) -> list[dict[str, Any]]:
    """Takeovers going on or ended since ``since`` (whose replies may still turn out undelivered)."""
    rows = await conn.execute(select(TAKEOVERS).where(
        (TAKEOVERS.c.ended_at.is_(None)) | (TAKEOVERS.c.ended_at >= since)).limit(limit))
    return [_takeover(r) for r in rows]


# ---- report -------------------------------------------------------------------------------------


async def for_report(conn: AsyncConnection, start: datetime, end: datetime) -> list[dict[str, Any]]:
    rows = await conn.execute(select(T).where(and_(T.c.created_at >= start, T.c.created_at < end),
                                              T.c.status != "cancelled"))
    return [_ticket(r) for r in rows]
