"""Gateway: conversation log, residents, outbox, access token, receipts, conversation state.

Revision ID: 0001
Revises:
"""

from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(128), unique=True),
        sa.Column("reply_to", sa.String(128), index=True),
        sa.Column("openid", sa.String(64), nullable=False, index=True),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("content", sa.Text, nullable=False, server_default=""),
        sa.Column("replies", sa.JSON),
        sa.Column("intent", sa.String(64)),
        sa.Column("item", sa.String(64)),
        sa.Column("action", sa.String(32)),
        sa.Column("latency_ms", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("request_id", sa.String(32)),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "residents",
        sa.Column("openid", sa.String(64), primary_key=True),
        sa.Column("subscribed", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("scene", sa.String(64)),
        sa.Column("subscribed_at", TS),
        sa.Column("unsubscribed_at", TS),
        sa.Column("last_seen_at", TS),
        sa.Column("latitude", sa.Float),
        sa.Column("longitude", sa.Float),
    )
    op.create_table(
        "outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(160), nullable=False, unique=True),
        sa.Column("openid", sa.String(64), index=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("source", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", TS),
        sa.Column("errcode", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("wechat_msgid", sa.String(64), index=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_table(
        "outbox_attempts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("outbox_id", sa.BigInteger, nullable=False, index=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("errcode", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("duration_ms", sa.Float, nullable=False),
    )
    op.create_table(
        "access_tokens",
        sa.Column("appid", sa.String(64), primary_key=True),
        sa.Column("token", sa.Text),
        sa.Column("expires_at", TS),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", TS),
        sa.Column("refreshed_at", TS),
    )
    op.create_table(
        "template_receipts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("wechat_msgid", sa.String(64), nullable=False, index=True),
        sa.Column("openid", sa.String(64), nullable=False),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("received_at", TS, nullable=False),
    )
    op.create_table(
        "conversation_state",
        sa.Column("openid", sa.String(64), primary_key=True),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "reply_pages",
        sa.Column("openid", sa.String(64), primary_key=True),
        sa.Column("remainder", sa.Text, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )


def downgrade() -> None:
    for name in ("reply_pages", "conversation_state", "template_receipts", "access_tokens", "outbox_attempts", "outbox", "residents", "messages"):
        op.drop_table(name)
