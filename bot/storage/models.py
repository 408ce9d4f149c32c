"""SQLAlchemy 2.0 models. The schema itself is owned by the Alembic migrations in ``migrations/``.

Each later capability (tickets, notices, …) adds its tables here and a migration beside them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


BigId = BigInteger().with_variant(Integer(), "sqlite")


class Message(Base):
    """Conversation log: one row per message in or out.

    An inbound row's ``dedup_key`` is unique: inserting it *is* the claim that makes WeChat's retries
    harmless across processes. An outbound row points back at the inbound one via ``reply_to`` and
    keeps the serialized replies so a retry gets the very same answer.
    """

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    reply_to: Mapped[str | None] = mapped_column(String(128), index=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    direction: Mapped[str] = mapped_column(String(3))  # in / out
    kind: Mapped[str] = mapped_column(String(32))
    content: Mapped[str] = mapped_column(Text, default="")
    replies: Mapped[list | None] = mapped_column(JSON)
    intent: Mapped[str | None] = mapped_column(String(64))
    item: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(32))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Resident(Base):
    """A follower of the official account, as far as the gateway knows them."""

    __tablename__ = "residents"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    scene: Mapped[str | None] = mapped_column(String(64))
    subscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The last message, menu click, follow or scan (what opens WeChat's 48-hour customer-service
    # window), up to ``Journal.INBOUND_EVERY`` behind: the journal writes it in its group commit
    # (migration 0008). A row is created for any openid that writes, workers included.
    last_inbound_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)


class OutboxMessage(Base):
    """One outbound WeChat call, queued, retried with backoff and recorded with its result.

    ``idempotency_key`` is unique, so enqueueing the same logical message twice (a retried webhook, a
    notice fan-out resumed after a crash) creates one row and one send.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    openid: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # custom / template / subscribe / menu
    payload: Mapped[dict] = mapped_column(JSON)
    source: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending/sent/failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    errcode: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    wechat_msgid: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Re-sends scheduled because the template receipt said "failed: system failed" (bounded by
    # ``outbox.receipt_retry_delays``); such a row no longer holds back the resident's later rows.
    receipt_retries: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)


class OutboxAttempt(Base):
    """Every try of an outbox row: when, how long, what WeChat said."""

    __tablename__ = "outbox_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(BigInteger, index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    errcode: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Float)


class AccessToken(Base):
    """The one access_token shared by every process, with a refresh lease so only one fetches."""

    __tablename__ = "access_tokens"

    appid: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TemplateReceipt(Base):
    """TEMPLATESENDJOBFINISH delivery receipts."""

    __tablename__ = "template_receipts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    wechat_msgid: Mapped[str] = mapped_column(String(64), index=True)
    openid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ConversationState(Base):
    """Per-resident dialogue context (last item, pending clarify list, open form), with expiry."""

    __tablename__ = "conversation_state"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[dict] = mapped_column(JSON)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReplyPage(Base):
    """The rest of a reply that was cut to fit WeChat's limit, served on "更多"."""

    __tablename__ = "reply_pages"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    remainder: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- dialogue (faq conversation): unmatched questions (migration 0003; 转人工 requests are tickets) ---


class UnmatchedQuestion(Base):
    """A question the bot could not answer, kept for admins to review and turn into FAQ questions.

    ``text`` is stored with phone and ID numbers masked: the review screen never needs them.
    """

    __tablename__ = "unmatched_questions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    text: Mapped[str] = mapped_column(Text)
    normalized: Mapped[str] = mapped_column(Text, default="")
    candidates: Mapped[list] = mapped_column(JSON)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    knowledge_version: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # why it is here: "fallback" (the bot had no answer) or "wrong" (the resident said the answer was
    # not what they asked: ``candidates`` then holds the item answered)
    reason: Mapped[str] = mapped_column(String(16), default="fallback", server_default="fallback")


# --- notices, subscriptions, sign-ups, announcements (issue 5; bot/storage/notices.py) ---------


class Notice(Base):
    """A community notice or activity as defined in ``notices/<id>.toml`` (the file is the source).

    ``taken`` counts confirmed sign-ups: the conditional ``UPDATE … WHERE taken < capacity`` on this
    row is what keeps capacity under concurrent 报名.
    """

    __tablename__ = "notices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32), index=True)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    place: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    audience: Mapped[dict] = mapped_column(JSON)
    push: Mapped[dict] = mapped_column(JSON)  # {"at": [rules], "until": ISO UTC or None}
    repeat: Mapped[str | None] = mapped_column(String(64))
    capacity: Mapped[int | None] = mapped_column(Integer)
    taken: Mapped[int] = mapped_column(Integer, default=0)
    link: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="published")  # published / cancelled
    source: Mapped[str] = mapped_column(String(300), default="")
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NoticePush(Base):
    """One scheduled push of a notice (publish, evening before, hour before, one repeat occurrence).

    This table *is* the persistent job store: a scheduler tick claims due rows under a lease, so two
    scheduler processes never fan out the same push at once; ``cursor`` (the last openid queued) lets a
    fan-out resume after a crash, and the outbox's idempotency keys make the resumed chunk harmless.
    """

    __tablename__ = "notice_pushes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    notice_id: Mapped[str] = mapped_column(String(64), index=True)
    push_key: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    original_due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")  # scheduled/running/done/missed/cancelled
    cursor: Mapped[str | None] = mapped_column(String(64))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    queued: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ux_notice_pushes_key", "notice_id", "push_key", unique=True),
        Index("ix_notice_pushes_due", "status", "due_at"),
    )


class NoticeSubscription(Base):
    """A resident's explicit choice for one category (订阅 = True, 退订 = False)."""

    __tablename__ = "notice_subscriptions"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    subscribed: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_notice_subscriptions_category", "category", "subscribed"),)


class NoticeSkip(Base):
    """A targeted resident who was not queued for a push, and why (opted out, no channel, …)."""

    __tablename__ = "notice_skips"

    notice_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    push_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NoticeSignup(Base):
    """报名: confirmed within capacity, else on the waiting list (in ``id`` order)."""

    __tablename__ = "notice_signups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    notice_id: Mapped[str] = mapped_column(String(64))
    openid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # confirmed / waiting / cancelled
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ux_notice_signups", "notice_id", "openid", unique=True),)


class NoticeResidentTag(Base):
    """Audience tags (老年人, 残疾人, 志愿者 …) a resident carries, for notices aimed at a tag."""

    __tablename__ = "notice_resident_tags"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    tag: Mapped[str] = mapped_column(String(32), primary_key=True)


class NoticeDailyCount(Base):
    """Notice messages queued per local day: the daily cap is checked against this."""

    __tablename__ = "notice_daily_counts"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    queued: Mapped[int] = mapped_column(Integer, default=0)


class Announcement(Base):
    """公示 (社区开支, 工程项目, 好人好事 …) as defined in ``announcements/<id>.toml``."""

    __tablename__ = "announcements"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    title: Mapped[str] = mapped_column(String(200))
    published_on: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD, local date
    summary: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(300), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- tickets (issue 4): grids, grid workers, residents' grid, invite codes, tickets, audit, timers ---


class Grid(Base):
    """A 网格: the 小区/楼栋 it covers (matched against addresses and offered in chat), an optional
    boundary polygon (``[[lat, lon], …]``) for residents who send a location, its worker and backup."""

    __tablename__ = "grids"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    areas: Mapped[list] = mapped_column(JSON)
    polygon: Mapped[list | None] = mapped_column(JSON)
    worker_id: Mapped[int | None] = mapped_column(Integer)
    backup_id: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class GridWorker(Base):
    """A 网格员 (role worker), a community admin (role admin: 督办, 退单, 延期) or the duty desk (role duty).

    Identified by phone in the import file; ``openid`` is set when they bind with an invite code."""

    __tablename__ = "grid_workers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(32))
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    role: Mapped[str] = mapped_column(String(8), default="worker")
    openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    on_leave: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ResidentGrid(Base):
    """Which grid a resident belongs to (and how we learnt it), plus the address and phone they last
    confirmed for a 代办, so the next form can offer them again."""

    __tablename__ = "resident_grids"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    grid_id: Mapped[str | None] = mapped_column(String(32))
    via: Mapped[str | None] = mapped_column(String(16))  # scan / location / chat / address
    address: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WorkerInvite(Base):
    """A one-time code an admin hands to a worker; only its SHA-256 is stored."""

    __tablename__ = "worker_invites"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    worker_id: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    used_by: Mapped[str | None] = mapped_column(String(64))


class Ticket(Base):
    """One 工单: 代办 (proxy), 报事 (report) or 转人工 (human), with its lifecycle columns.

    ``status`` only ever changes through a conditional UPDATE (``WHERE status IN …``), which is what
    makes two workers accepting at once safe: exactly one UPDATE matches."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    openid: Mapped[str] = mapped_column(String(64))
    grid_id: Mapped[str | None] = mapped_column(String(32))
    worker_id: Mapped[int | None] = mapped_column(Integer)
    item_id: Mapped[str | None] = mapped_column(String(64))
    item_name: Mapped[str | None] = mapped_column(String(64))
    checklist: Mapped[list | None] = mapped_column(JSON)
    content: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20))
    time_window: Mapped[str | None] = mapped_column(String(64))
    media: Mapped[list | None] = mapped_column(JSON)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    fingerprint: Mapped[str] = mapped_column(String(64))
    rating: Mapped[str | None] = mapped_column(String(8))
    reopened: Mapped[int] = mapped_column(Integer, default=0)
    extension: Mapped[str | None] = mapped_column(String(16))  # requested / approved / refused
    extension_hours: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accept_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_tickets_worker_open", "worker_id", "status", "created_at"),
        Index("ix_tickets_openid", "openid", "created_at"),
        Index("ix_tickets_fingerprint", "fingerprint", "created_at"),
        Index("ix_tickets_grid_status", "grid_id", "kind", "status", "created_at"),
    )


class TicketEvent(Base):
    """The audit trail: who did what to which ticket, when, with which note (never edited)."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(BigInteger, index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(24))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict | None] = mapped_column(JSON)


class TicketTimer(Base):
    """A due reminder or 督办 escalation. Rows in the database are what makes timers survive restarts;
    a poller (driven by APScheduler) claims due rows with a conditional UPDATE, so each fires once."""

    __tablename__ = "ticket_timers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(BigInteger, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # accept_warn / accept_due / done_warn / done_due
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(12), default="waiting")  # waiting / fired / cancelled

    __table_args__ = (Index("ix_ticket_timers_due", "state", "due_at"),)


class TicketFollower(Base):
    """A resident who said "我也遇到了" to an open report: told when it is fixed."""

    __tablename__ = "ticket_followers"

    ticket_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TicketTakeover(Base):
    """A 转人工 conversation a grid worker has taken over (migration 0007): while ``ended_at`` is NULL
    the resident's messages go to ``worker_id`` instead of the bot, and the worker's 回复 go back.

    One row per ticket (a worker's reply restarts an ended takeover). ``active_at`` is the last message
    either way: a takeover idle for ``tickets.takeover_idle_minutes`` goes back to the bot."""

    __tablename__ = "ticket_takeovers"

    ticket_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    openid: Mapped[str] = mapped_column(String(64))
    worker_id: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    active_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # last "已转给网格员" to the resident
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_reason: Mapped[str | None] = mapped_column(String(16))  # done / resident / lapsed / cancel / transfer …

    __table_args__ = (
        Index("ix_ticket_takeovers_openid", "openid", "ended_at"),
        Index("ix_ticket_takeovers_open", "ended_at", "active_at"),
    )
