"""Queries for the outbox: claiming due rows under a lease, and recording each attempt's outcome.

Why a lease and not a long transaction: a send can take seconds, and holding row locks (or SQLite's
single write lock) across HTTP calls would stall every other writer. Claiming is one atomic UPDATE that
stamps ``lease_owner``/``lease_until`` on rows that are due and not leased; PostgreSQL picks them with
``FOR UPDATE SKIP LOCKED`` so concurrent senders take different rows instead of queueing behind each
other; SQLite runs the whole UPDATE under its write lock, which gives the same exactly-once claim.
Every outcome is written only while we still own the lease (``WHERE lease_owner = :owner``).

Template receipts (TEMPLATESENDJOBFINISH) saying "failed: system failed" put a ``sent`` row back to
``pending`` with a delay (:func:`resend_after_receipt`); the guard ``status = 'sent' AND wechat_msgid =
:msgid`` makes a duplicate receipt a no-op, and the re-send gets a new msgid, so a late receipt of the
old one matches nothing. A receipt that beats the sender's commit is caught by the sender instead
(:func:`resend_if_receipt_came_first`).

A customer-service row may carry a template message to send instead when WeChat refuses it with
45015 (the recipient has not written to the account for 48 hours): ``payload["fallback"]``. The
sender queues it as a row of its own, keyed :func:`fallback_key`, in the transaction that records the
refusal (:func:`insert_new`): one template however often the refusal is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Sequence

from sqlalchemy import and_, bindparam, case, exists, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import as_utc
from bot.storage.db import upsert_insert
from bot.storage.models import OutboxAttempt, OutboxMessage, TemplateReceipt

T = OutboxMessage.__table__
ATTEMPTS = OutboxAttempt.__table__
RECEIPTS = TemplateReceipt.__table__
SYSTEM_FAILED = "failed:systemfailed"  # a receipt status with spaces removed, lower case
#: Payload key of a customer-service row: the template payload to queue if WeChat answers 45015.
FALLBACK = "fallback"
OUTSIDE_WINDOW = 45015


def fallback_key(key: str) -> str:
    """The idempotency key of the template that stands in for the customer-service row ``key``."""
    return f"{key}:template"


async def insert_new(conn: AsyncConnection, rows: Sequence[dict[str, Any]], now: datetime) -> int:
    """Queue rows (idempotency_key, kind, payload, openid, source, optionally next_attempt_at); keys
    already present are skipped. Returns how many were new."""
    if not rows:
        return 0
    full = [{"openid": None, "source": None, "status": "pending", "attempts": 0, "next_attempt_at": now,
             "created_at": now, **row} for row in rows]
    stmt = upsert_insert(conn, T).on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(T.c.id)
    return len((await conn.execute(stmt, full)).all())


def _lease_free(table: Any, now: datetime) -> Any:
    return or_(table.c.lease_until.is_(None), table.c.lease_until < now)


def _first_blockers(now: datetime) -> Any:
    """Per resident and kind, the first pending row that is waiting or in flight: it keeps the order.

    A later row of the same resident and kind must not overtake it — without this a reply split into
    parts could arrive 2-1 when part 1 is being retried. A row waiting for a re-send after a failed
    receipt does not hold anyone back: it was sent once already (the order was kept then), and a
    30-minute wait must not delay the resident's next message.

    Why an aggregate joined once and not ``NOT EXISTS (earlier blocking row)`` per candidate: the
    latter is quadratic in one resident's pending rows (10,000 piled-up rows of three residents made a
    claim take 10.8 s on PostgreSQL); this is one pass over the blocking rows.
    """
    p = T.alias("earlier")
    return (
        select(p.c.openid, p.c.kind, func.min(p.c.id).label("first_block"))
        .where(p.c.status == "pending", p.c.receipt_retries == 0,
               or_(p.c.next_attempt_at > now, and_(p.c.lease_until.is_not(None), p.c.lease_until >= now)))
        .group_by(p.c.openid, p.c.kind)
        .subquery("blockers")
    )


async def claim_due(conn: AsyncConnection, owner: str, now: datetime, lease_until: datetime, limit: int,
                    ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Lease up to ``limit`` due rows to ``owner``; returns them oldest first. ``ids`` narrows the pick."""
    c = T.alias("candidate")
    b = _first_blockers(now)
    pick = (
        select(c.c.id)
        .select_from(c.outerjoin(b, and_(b.c.openid == c.c.openid, b.c.kind == c.c.kind)))
        .where(c.c.status == "pending", c.c.next_attempt_at <= now, _lease_free(c, now),
               or_(b.c.first_block.is_(None), c.c.id < b.c.first_block))
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


@dataclass(frozen=True)
class Result:
    """The outcome of one try, as the sender hands it over for recording."""

    id: int
    status: str  # sent / retry / failed
    at: datetime
    duration_ms: float
    errcode: int | None = None
    error: str | None = None
    msgid: str | None = None
    next_at: datetime | None = None


def _owned(owner: str) -> Any:
    return and_(T.c.id == bindparam("b_id"), T.c.lease_owner == owner, T.c.status == "pending")


def _released(**values: Any) -> dict[str, Any]:
    return {"attempts": T.c.attempts + 1, "lease_owner": None, "lease_until": None, **values}


def _result_updates(owner: str) -> dict[str, tuple[Any, Callable[[Result], dict[str, Any]]]]:
    """Per outcome: the executemany UPDATE and the parameters one result gives it."""
    return {
        "sent": (update(T).where(_owned(owner)).values(**_released(
            status="sent", sent_at=bindparam("b_at"), errcode=0, error=None, wechat_msgid=bindparam("b_msgid"))),
            lambda r: {"b_id": r.id, "b_at": r.at, "b_msgid": r.msgid}),
        "retry": (update(T).where(_owned(owner)).values(**_released(
            next_attempt_at=bindparam("b_next"), errcode=bindparam("b_errcode"), error=bindparam("b_error"))),
            lambda r: {"b_id": r.id, "b_next": r.next_at, "b_errcode": r.errcode, "b_error": r.error or ""}),
        "failed": (update(T).where(_owned(owner)).values(**_released(
            status="failed", errcode=bindparam("b_errcode"), error=bindparam("b_error"))),
            lambda r: {"b_id": r.id, "b_errcode": r.errcode, "b_error": r.error or ""}),
    }


async def record_results(conn: AsyncConnection, owner: str, results: Sequence[Result]) -> int | None:
    """Write a batch of outcomes: one ``outbox_attempts`` row each, then each row's new state.

    One executemany per kind of outcome, so a batch costs a handful of round trips whatever its size.
    Rows whose lease we no longer own are left alone. Returns how many rows were updated when the
    driver reports it (SQLite does; asyncpg's executemany may not: then None).
    """
    if not results:
        return 0
    await conn.execute(insert(ATTEMPTS), [
        {"outbox_id": r.id, "at": r.at, "errcode": 0 if r.status == "sent" else r.errcode, "error": r.error,
         "duration_ms": r.duration_ms} for r in results])
    updated: int | None = 0
    for status, (stmt, params) in _result_updates(owner).items():
        batch = [params(r) for r in results if r.status == status]
        if not batch:
            continue
        count = (await conn.execute(stmt, batch)).rowcount
        updated = None if updated is None or count is None or count < 0 else updated + count
    return updated


# ---- re-sends after a failed template receipt -------------------------------------------------------


def is_system_failure(status: str) -> bool:
    """True for "failed: system failed" (spaces vary): the only receipt status worth a re-send.

    "failed:user block" is the resident's choice and is never re-sent; "success" needs nothing.
    """
    return status.replace(" ", "").lower() == SYSTEM_FAILED


def _resend(where: Any, now: datetime, delays: Sequence[timedelta]) -> Any:
    """The one UPDATE that puts a sent template row back in the queue, ``delays[n]`` after ``now``
    for its n-th re-send; rows that used up ``delays`` are left as they are (sent, receipt failed)."""
    due = case({n: literal(now + d, T.c.next_attempt_at.type) for n, d in enumerate(delays)},
               value=T.c.receipt_retries, else_=T.c.next_attempt_at)
    return (
        update(T)
        .where(where, T.c.status == "sent", T.c.kind == "template", T.c.receipt_retries < len(delays))
        .values(status="pending", next_attempt_at=due, receipt_retries=T.c.receipt_retries + 1,
                error="receipt: failed: system failed", lease_owner=None, lease_until=None)
        .returning(T.c.id)
    )


async def resend_after_receipt(conn: AsyncConnection, msgid: str, openid: str, now: datetime,
                               delays: Sequence[timedelta]) -> int | None:
    """A "system failed" receipt arrived: schedule the row that got ``msgid`` for a re-send.

    Returns the outbox id, or None (unknown msgid, a duplicate receipt, re-sends used up).
    """
    if not delays:
        return None
    rows = (await conn.execute(_resend(and_(T.c.wechat_msgid == msgid, T.c.openid == openid), now, delays))).all()
    return int(rows[0].id) if rows else None


async def resend_if_receipt_came_first(conn: AsyncConnection, ids: Sequence[int], now: datetime,
                                       delays: Sequence[timedelta]) -> list[int]:
    """Rows just marked sent whose "system failed" receipt was stored before we recorded the msgid.

    WeChat can call the webhook before the sender commits; that receipt's UPDATE found no row with
    its msgid, so the sender applies the same rule here, in the transaction that records the msgid.
    Exact on SQLite (writers are serialised). On PostgreSQL a receipt whose transaction overlaps this
    one to the millisecond can still be missed by both (each reads before the other commits): the
    receipt stays recorded and the report shows the failure, but no re-send happens.
    """
    if not ids or not delays:
        return []
    failed = exists().where(RECEIPTS.c.wechat_msgid == T.c.wechat_msgid,
                            func.lower(func.replace(RECEIPTS.c.status, " ", "")) == SYSTEM_FAILED)
    rows = await conn.execute(_resend(and_(T.c.id.in_(list(ids)), failed), now, delays))
    return [int(r.id) for r in rows]


async def release(conn: AsyncConnection, row_ids: Sequence[int], owner: str, not_before: datetime | None = None) -> None:
    """Give rows back unsent (shutting down, or held back behind a failed earlier part)."""
    if not row_ids:
        return
    values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
    if not_before is not None:
        values["next_attempt_at"] = not_before
    await conn.execute(update(T).where(T.c.id.in_(list(row_ids)), T.c.lease_owner == owner).values(**values))


async def get(conn: AsyncConnection, row_id: int) -> dict[str, Any] | None:
    row = (await conn.execute(select(T).where(T.c.id == row_id))).first()
    return None if row is None else dict(row._mapping)


async def attempts_of(conn: AsyncConnection, outbox_id: int) -> list[dict[str, Any]]:
    rows = await conn.execute(select(ATTEMPTS).where(ATTEMPTS.c.outbox_id == outbox_id).order_by(ATTEMPTS.c.id))
    return [dict(r._mapping) for r in rows]


async def id_by_key(conn: AsyncConnection, key: str) -> int:
    return int((await conn.execute(select(T.c.id).where(T.c.idempotency_key == key))).scalar_one())


async def delivery_of(conn: AsyncConnection, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Status, errcode and error of the rows queued under these idempotency keys (missing keys left out):
    how a feature shows whether its messages reached the person (e.g. 45015 outside the 48-hour window)."""
    if not keys:
        return {}
    rows = await conn.execute(select(T.c.idempotency_key, T.c.status, T.c.errcode, T.c.error)
                              .where(T.c.idempotency_key.in_(list(keys))))
    return {r.idempotency_key: {"status": r.status, "errcode": r.errcode, "error": r.error} for r in rows}
