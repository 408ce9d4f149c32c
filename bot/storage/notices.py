"""Queries for notices: definitions, the push table (our persistent job store), audiences,
subscriptions, skips, sign-ups, the daily count, delivery reports and announcements.

Why pushes are claimed under a lease (the same idea as ``bot.storage.outbox``): a fan-out can take
minutes, so it must not hold a transaction; one atomic UPDATE stamps ``lease_owner``/``lease_until``
and every later write checks the owner, so two scheduler processes never run the same push at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable, Sequence

from sqlalchemy import and_, case, delete, exists, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import as_utc
from bot.storage import models
from bot.storage.db import upsert_insert
from bot.storage.models import (
    Announcement,
    Notice,
    NoticeDailyCount,
    NoticePush,
    NoticeResidentTag,
    NoticeSignup,
    NoticeSkip,
    NoticeSubscription,
    OutboxMessage,
    Resident,
    TemplateReceipt,
)

N = Notice.__table__
P = NoticePush.__table__
S = NoticeSubscription.__table__
SKIPS = NoticeSkip.__table__
SIGNUPS = NoticeSignup.__table__
TAGS = NoticeResidentTag.__table__
DAILY = NoticeDailyCount.__table__
A = Announcement.__table__
R = Resident.__table__
OUT = OutboxMessage.__table__
RECEIPTS = TemplateReceipt.__table__

_TIMES = ("starts_at", "ends_at", "published_at", "updated_at", "due_at", "original_due_at", "lease_until",
          "started_at", "finished_at", "created_at", "at")


def _row(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for key in _TIMES:
        if key in out and isinstance(out[key], datetime):
            out[key] = as_utc(out[key])
    return out


def _like(value: str) -> str:
    """Escape LIKE wildcards (notice ids may contain ``_``)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def source_of(notice_id: str, push_key: str) -> str:
    """``outbox.source`` of a notice message; the report groups by it."""
    return f"notice:{notice_id}:{push_key}"[:64]


def message_key(notice_id: str, push_key: str, openid: str) -> str:
    """The one idempotency key per (notice, push, resident)."""
    return f"notice:{notice_id}:{push_key}:{openid}"


# ---- definitions --------------------------------------------------------------------------------


async def upsert_notice(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """Insert or update a notice from its file; ``taken`` (sign-ups so far) is never overwritten."""
    ins = upsert_insert(conn, N).values(**values)
    cols = [k for k in values if k not in ("id", "taken", "published_at")]
    await conn.execute(ins.on_conflict_do_update(index_elements=["id"], set_={c: ins.excluded[c] for c in cols}))


async def get_notice(conn: AsyncConnection, notice_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(N).where(N.c.id == notice_id))).first()
    return None if row is None else _row(row)


async def list_notices(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = await conn.execute(select(N).order_by(N.c.published_at.desc(), N.c.id))
    return [_row(r) for r in rows]


async def open_signup_notices(conn: AsyncConnection, now: datetime) -> list[dict[str, Any]]:
    """Published notices with places whose start is still ahead (or that have no start)."""
    rows = await conn.execute(
        select(N).where(N.c.status == "published", N.c.capacity.is_not(None),
                        or_(N.c.starts_at.is_(None), N.c.starts_at > now))
        .order_by(N.c.starts_at, N.c.id)
    )
    return [_row(r) for r in rows]


async def upcoming_notices(conn: AsyncConnection, now: datetime, limit: int) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(N).where(N.c.status == "published", or_(N.c.starts_at.is_(None), N.c.starts_at > now))
        .order_by(N.c.starts_at, N.c.id).limit(limit)
    )
    return [_row(r) for r in rows]


# ---- pushes (the job store) ---------------------------------------------------------------------


async def schedule_push(conn: AsyncConnection, notice_id: str, push_key: str, due_at: datetime,
                        urgent: bool) -> None:
    """Create a push, or move a not-yet-started one to its new time (the file was edited)."""
    ins = upsert_insert(conn, P).values(notice_id=notice_id, push_key=push_key, due_at=due_at, original_due_at=due_at,
                                  urgent=urgent, status="scheduled", queued=0)
    await conn.execute(ins.on_conflict_do_update(
        index_elements=["notice_id", "push_key"],
        set_={"due_at": ins.excluded.due_at, "original_due_at": ins.excluded.original_due_at,
              "urgent": ins.excluded.urgent},
        where=P.c.status == "scheduled",
    ))


async def cancel_other_pushes(conn: AsyncConnection, notice_id: str, keep: Iterable[str], now: datetime) -> int:
    """Scheduled pushes that the edited file no longer asks for are cancelled (never silently sent)."""
    keep = list(keep)
    stmt = update(P).where(P.c.notice_id == notice_id, P.c.status == "scheduled")
    if keep:
        stmt = stmt.where(P.c.push_key.not_in(keep))
    result = await conn.execute(stmt.values(status="cancelled", finished_at=now, note="removed from file"))
    return int(result.rowcount or 0)


async def pushes_of(conn: AsyncConnection, notice_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(select(P).where(P.c.notice_id == notice_id).order_by(P.c.original_due_at, P.c.id))
    return [_row(r) for r in rows]


async def latest_repeat_push(conn: AsyncConnection, notice_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(
        select(P).where(P.c.notice_id == notice_id, P.c.push_key.like("r:%"))
        .order_by(P.c.original_due_at.desc()).limit(1)
    )).first()
    return None if row is None else _row(row)


async def claim_due_pushes(conn: AsyncConnection, owner: str, now: datetime, lease_until: datetime,
                           limit: int) -> list[dict[str, Any]]:
    """Lease due pushes (scheduled, or running with an expired lease: a crashed fan-out) to ``owner``."""
    c = P.alias("candidate")
    pick = (
        select(c.c.id)
        .where(c.c.status.in_(("scheduled", "running")), c.c.due_at <= now,
               or_(c.c.lease_until.is_(None), c.c.lease_until < now))
        .order_by(c.c.due_at, c.c.id).limit(limit)
    )
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True, of=c)
    stmt = (
        update(P)
        .where(P.c.id.in_(pick.scalar_subquery()), P.c.status.in_(("scheduled", "running")),
               or_(P.c.lease_until.is_(None), P.c.lease_until < now))
        .values(lease_owner=owner, lease_until=lease_until)
        .returning(*P.c)
    )
    rows = [_row(r) for r in (await conn.execute(stmt)).all()]
    rows.sort(key=lambda r: (r["due_at"], r["id"]))
    return rows


def _owned(push_id: int, owner: str) -> Any:
    return and_(P.c.id == push_id, P.c.lease_owner == owner)


async def advance_push(conn: AsyncConnection, push_id: int, owner: str, cursor: str | None, queued: int,
                       now: datetime, lease_until: datetime) -> bool:
    """Record a finished chunk (cursor, count) and renew the lease; False when the lease was lost."""
    result = await conn.execute(
        update(P).where(_owned(push_id, owner)).values(
            status="running", cursor=cursor, queued=P.c.queued + queued, lease_until=lease_until,
            started_at=func.coalesce(P.c.started_at, now))
    )
    return result.rowcount == 1


async def finish_push(conn: AsyncConnection, push_id: int, owner: str, status: str, now: datetime,
                      note: str | None = None) -> bool:
    result = await conn.execute(
        update(P).where(_owned(push_id, owner)).values(
            status=status, finished_at=now, note=note, lease_owner=None, lease_until=None)
    )
    return result.rowcount == 1


async def defer_push(conn: AsyncConnection, push_id: int, owner: str, due_at: datetime, note: str) -> bool:
    """Give a push back to run later (quiet hours, daily cap reached); keeps its cursor."""
    result = await conn.execute(
        update(P).where(_owned(push_id, owner)).values(due_at=due_at, note=note, lease_owner=None,
                                                       lease_until=None)
    )
    return result.rowcount == 1


async def next_due_at(conn: AsyncConnection) -> datetime | None:
    value = (await conn.execute(
        select(func.min(P.c.due_at)).where(P.c.status.in_(("scheduled", "running"))))).scalar()
    return as_utc(value)


# ---- audience -----------------------------------------------------------------------------------


def grid_clause(grids: Sequence[str]) -> Any:
    """Residents in these grids. Grids belong to the tickets engine (``resident_grids``); a resident
    whose grid is not known there yet but who scanned a grid QR code (scene ``grid:<id>``) counts too."""
    clauses = [R.c.scene.in_([f"grid:{g}" for g in grids])]
    resident_grid = getattr(models, "ResidentGrid", None)
    if resident_grid is not None:
        G = resident_grid.__table__
        clauses.append(exists().where(G.c.openid == R.c.openid, G.c.grid_id.in_(list(grids))))
    return or_(*clauses)


def tag_clause(tags: Sequence[str]) -> Any:
    return exists().where(TAGS.c.openid == R.c.openid, TAGS.c.tag.in_(list(tags)))


def audience_clause(audience: dict[str, Any]) -> Any:
    """``{"all": True}`` or ``{"grids": [...], "tags": [...]}`` (both given: residents matching both)."""
    clauses = []
    if audience.get("grids"):
        clauses.append(grid_clause(audience["grids"]))
    if audience.get("tags"):
        clauses.append(tag_clause(audience["tags"]))
    return and_(*clauses) if clauses else literal(True)


async def target_chunk(conn: AsyncConnection, audience: dict[str, Any], category: str, urgent: bool,
                       default_on: bool, after: str | None, limit: int) -> list[tuple[str, bool | None]]:
    """The next ``limit`` followers in the audience after ``after`` (openid order), with their choice.

    Returns ``(openid, subscribed)`` where subscribed is True/False for an explicit 订阅/退订 and None
    when they never chose. Non-urgent pushes only return residents who subscribed, who opted out
    (so the report can count them), or everyone when the category is on by default.
    """
    choice = (
        select(S.c.subscribed).where(S.c.openid == R.c.openid, S.c.category == category)
        .correlate(R).scalar_subquery()
    )
    stmt = select(R.c.openid, choice.label("choice")).where(R.c.subscribed.is_(True), audience_clause(audience))
    if after is not None:
        stmt = stmt.where(R.c.openid > after)
    if not urgent and not default_on:
        stmt = stmt.where(exists().where(S.c.openid == R.c.openid, S.c.category == category))
    rows = await conn.execute(stmt.order_by(R.c.openid).limit(limit))
    return [(r.openid, None if r.choice is None else bool(r.choice)) for r in rows]


async def last_seen(conn: AsyncConnection, openids: Sequence[str],
                    inbound_lag: timedelta = timedelta(0)) -> dict[str, datetime]:
    """The latest time each resident may have last written to us (for the 48-hour customer-service
    window): their last event (``last_seen_at``: subscribe, scan, location) or their last message
    (``last_inbound_at``), whichever is later. ``last_inbound_at`` is written at most once per
    ``inbound_lag`` per process, so that much is added to it: a resident near the edge is tried and
    WeChat's 45015 decides, rather than skipped on a stale record.

    Why the residents row and not the messages: one indexed read per chunk instead of a GROUP BY over
    the message log, which only grows."""
    if not openids:
        return {}
    rows = await conn.execute(select(R.c.openid, R.c.last_seen_at, R.c.last_inbound_at)
                              .where(R.c.openid.in_(list(openids))))
    seen: dict[str, datetime] = {}
    for r in rows:
        event, message = as_utc(r.last_seen_at), as_utc(r.last_inbound_at)
        known = [t for t in (event, message + inbound_lag if message else None) if t is not None]
        if known:
            seen[r.openid] = max(known)
    return seen


async def add_skips(conn: AsyncConnection, notice_id: str, push_key: str, skips: Sequence[tuple[str, str]],
                    now: datetime) -> None:
    if not skips:
        return
    rows = [{"notice_id": notice_id, "push_key": push_key, "openid": o, "reason": reason, "at": now}
            for o, reason in skips]
    await conn.execute(upsert_insert(conn, SKIPS).on_conflict_do_nothing(), rows)


# ---- subscriptions and tags ---------------------------------------------------------------------


async def set_choice(conn: AsyncConnection, openid: str, categories: Sequence[str], subscribed: bool,
                     now: datetime) -> None:
    rows = [{"openid": openid, "category": c, "subscribed": subscribed, "updated_at": now} for c in categories]
    ins = upsert_insert(conn, S)
    await conn.execute(ins.on_conflict_do_update(
        index_elements=["openid", "category"],
        set_={"subscribed": ins.excluded.subscribed, "updated_at": ins.excluded.updated_at}), rows)


async def choices(conn: AsyncConnection, openid: str) -> dict[str, bool]:
    rows = await conn.execute(select(S.c.category, S.c.subscribed).where(S.c.openid == openid))
    return {r.category: bool(r.subscribed) for r in rows}


async def cancel_pending_messages(conn: AsyncConnection, openid: str, categories: Sequence[str] | None,
                                  now: datetime) -> int:
    """Opt-out at send time: notice messages still waiting in the outbox for this resident are dropped.

    Only rows no sender holds a lease on are touched (a leased row is being sent this very moment);
    the outbox sender never claims a row whose status is not ``pending``.
    """
    stmt = update(OUT).where(
        OUT.c.openid == openid, OUT.c.status == "pending", OUT.c.source.like("notice:%"),
        or_(OUT.c.lease_until.is_(None), OUT.c.lease_until < now),
    )
    if categories is not None:
        ids = select(N.c.id).where(N.c.category.in_(list(categories)))
        notice_ids = [r.id for r in await conn.execute(ids)]
        if not notice_ids:
            return 0
        stmt = stmt.where(or_(*[OUT.c.source.like(f"notice:{_like(i)}:%", escape="\\") for i in notice_ids]))
    result = await conn.execute(stmt.values(status="cancelled", error="opted out"))
    return int(result.rowcount or 0)


async def set_tags(conn: AsyncConnection, openid: str, tags: Sequence[str]) -> None:
    await conn.execute(delete(TAGS).where(TAGS.c.openid == openid))
    if tags:
        await conn.execute(TAGS.insert(), [{"openid": openid, "tag": t} for t in tags])


# ---- daily cap ----------------------------------------------------------------------------------


async def queued_on(conn: AsyncConnection, day: str) -> int:
    value = (await conn.execute(select(DAILY.c.queued).where(DAILY.c.day == day))).scalar()
    return int(value or 0)


async def add_queued(conn: AsyncConnection, day: str, count: int) -> None:
    if count <= 0:
        return
    ins = upsert_insert(conn, DAILY).values(day=day, queued=count)
    await conn.execute(ins.on_conflict_do_update(index_elements=["day"], set_={"queued": DAILY.c.queued + count}))


# ---- sign-ups -----------------------------------------------------------------------------------


async def signup(conn: AsyncConnection, notice_id: str, openid: str, now: datetime) -> str:
    """Sign ``openid`` up; returns confirmed / waiting / already_confirmed / already_waiting.

    Capacity is kept by a conditional UPDATE on the notice row (``taken < capacity``): PostgreSQL
    re-checks the condition after waiting for a concurrent writer's row lock, SQLite serialises
    writers, so two simultaneous 报名 for the last place never both win. Call inside a transaction.
    """
    existing = (await conn.execute(
        select(SIGNUPS.c.status).where(SIGNUPS.c.notice_id == notice_id, SIGNUPS.c.openid == openid)
    )).scalar()
    if existing in ("confirmed", "waiting"):
        return f"already_{existing}"
    won = await conn.execute(
        update(N).where(N.c.id == notice_id, N.c.capacity.is_not(None), N.c.taken < N.c.capacity)
        .values(taken=N.c.taken + 1)
    )
    status = "confirmed" if won.rowcount == 1 else "waiting"
    ins = upsert_insert(conn, SIGNUPS).values(notice_id=notice_id, openid=openid, status=status, created_at=now,
                                        updated_at=now)
    await conn.execute(ins.on_conflict_do_update(
        index_elements=["notice_id", "openid"], set_={"status": status, "updated_at": now, "created_at": now}))
    return status


async def cancel_signup(conn: AsyncConnection, notice_id: str, openid: str,
                        now: datetime) -> tuple[str | None, str | None]:
    """Withdraw (取消报名). Returns (the status withdrawn from, the openid promoted from the waiting
    list); a freed place goes to the earliest waiting resident, else back to the pool."""
    status = (await conn.execute(
        select(SIGNUPS.c.status).where(SIGNUPS.c.notice_id == notice_id, SIGNUPS.c.openid == openid,
                                       SIGNUPS.c.status.in_(("confirmed", "waiting")))
    )).scalar()
    if status is None:
        return None, None
    gone = await conn.execute(
        update(SIGNUPS).where(SIGNUPS.c.notice_id == notice_id, SIGNUPS.c.openid == openid,
                              SIGNUPS.c.status == status).values(status="cancelled", updated_at=now)
    )
    if gone.rowcount != 1 or status != "confirmed":
        return (status if gone.rowcount == 1 else None), None
    for _ in range(10):  # a concurrent withdrawal may promote the same resident first: take the next
        first = (await conn.execute(
            select(SIGNUPS.c.id, SIGNUPS.c.openid).where(SIGNUPS.c.notice_id == notice_id,
                                                         SIGNUPS.c.status == "waiting")
            .order_by(SIGNUPS.c.created_at, SIGNUPS.c.id).limit(1)
        )).first()
        if first is None:
            break
        promoted = await conn.execute(
            update(SIGNUPS).where(SIGNUPS.c.id == first.id, SIGNUPS.c.status == "waiting")
            .values(status="confirmed", updated_at=now)
        )
        if promoted.rowcount == 1:
            return status, str(first.openid)
    await conn.execute(update(N).where(N.c.id == notice_id, N.c.taken > 0).values(taken=N.c.taken - 1))
    return status, None


async def signups_of(conn: AsyncConnection, notice_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(SIGNUPS).where(SIGNUPS.c.notice_id == notice_id, SIGNUPS.c.status != "cancelled")
        .order_by(case((SIGNUPS.c.status == "confirmed", 0), else_=1), SIGNUPS.c.created_at, SIGNUPS.c.id)
    )
    return [_row(r) for r in rows]


async def signup_of(conn: AsyncConnection, notice_id: str, openid: str) -> dict[str, Any] | None:
    row = (await conn.execute(
        select(SIGNUPS).where(SIGNUPS.c.notice_id == notice_id, SIGNUPS.c.openid == openid))).first()
    return None if row is None else _row(row)


# ---- delivery report ----------------------------------------------------------------------------


async def report(conn: AsyncConnection, notice_id: str) -> dict[str, Any]:
    """Per push: queued, sent, delivered, failed (with reasons), opted out, skipped.

    Template receipts (TEMPLATESENDJOBFINISH, stored by the gateway) are joined through the msgid the
    send returned; customer-service and subscription messages have no receipt, so "sent" is the most
    we know about them.
    """
    out: dict[str, Any] = {}
    for push in await pushes_of(conn, notice_id):
        key = push["push_key"]
        source = source_of(notice_id, key)
        receipt = (
            select(RECEIPTS.c.status).where(RECEIPTS.c.wechat_msgid == OUT.c.wechat_msgid)
            .order_by(RECEIPTS.c.id.desc()).limit(1).correlate(OUT).scalar_subquery()
        )
        rows = await conn.execute(
            select(OUT.c.status, OUT.c.kind, OUT.c.errcode, OUT.c.error, receipt.label("receipt"),
                   func.count().label("n"))
            .where(OUT.c.source == source)
            .group_by(OUT.c.status, OUT.c.kind, OUT.c.errcode, OUT.c.error, receipt)
        )
        stats = {"push": key, "status": push["status"], "due_at": push["due_at"], "queued": 0, "pending": 0,
                 "sent": 0, "delivered": 0, "failed": 0, "opted_out": 0, "skipped": 0,
                 "reasons": {}}
        reasons: dict[str, int] = stats["reasons"]
        for r in rows:
            n = int(r.n)
            stats["queued"] += n
            if r.status == "pending":
                stats["pending"] += n
            elif r.status == "cancelled":
                stats["opted_out"] += n
            elif r.status == "failed":
                stats["failed"] += n
                reason = f"{r.errcode} {r.error or ''}".strip() if r.errcode else (r.error or "failed")
                reasons[reason] = reasons.get(reason, 0) + n
            elif r.status == "sent":
                stats["sent"] += n
                if r.receipt is None or r.receipt == "success":
                    if r.receipt == "success" or r.kind != "template":
                        stats["delivered"] += n
                else:
                    stats["failed"] += n
                    reasons[f"receipt: {r.receipt}"] = reasons.get(f"receipt: {r.receipt}", 0) + n
        skip_rows = await conn.execute(
            select(SKIPS.c.reason, func.count().label("n"))
            .where(SKIPS.c.notice_id == notice_id, SKIPS.c.push_key == key).group_by(SKIPS.c.reason)
        )
        skipped_total = 0
        for r in skip_rows:
            skipped_total += int(r.n)
            if r.reason == "opted_out":
                stats["opted_out"] += int(r.n)
            else:
                stats["skipped"] += int(r.n)
                reasons[f"skipped: {r.reason}"] = reasons.get(f"skipped: {r.reason}", 0) + int(r.n)
        stats["targeted"] = stats["queued"] + skipped_total
        out[key] = stats
    return out


# ---- announcements ------------------------------------------------------------------------------


async def upsert_announcement(conn: AsyncConnection, values: dict[str, Any]) -> None:
    ins = upsert_insert(conn, A).values(**values)
    await conn.execute(ins.on_conflict_do_update(index_elements=["id"],
                                                 set_={c: ins.excluded[c] for c in values if c != "id"}))


async def latest_announcements(conn: AsyncConnection, kind: str | None, limit: int) -> list[dict[str, Any]]:
    stmt = select(A)
    if kind:
        stmt = stmt.where(A.c.kind == kind)
    rows = await conn.execute(stmt.order_by(A.c.published_on.desc(), A.c.id.desc()).limit(limit))
    return [_row(r) for r in rows]
