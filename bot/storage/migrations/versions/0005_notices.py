"""Notices: definitions, scheduled pushes (the persistent job store), subscriptions, skips, sign-ups,
audience tags, daily counts and public announcements (公示).

Revision ID: 0005
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("category", sa.String(32), nullable=False, index=True),
        sa.Column("starts_at", TS),
        sa.Column("ends_at", TS),
        sa.Column("place", sa.String(200), nullable=False, server_default=""),
        sa.Column("body", sa.Text, nullable=False, server_default=""),
        sa.Column("audience", sa.JSON, nullable=False),
        sa.Column("push", sa.JSON, nullable=False),
        sa.Column("repeat", sa.String(64)),
        sa.Column("capacity", sa.Integer),
        sa.Column("taken", sa.Integer, nullable=False, server_default="0"),
        sa.Column("link", sa.String(500)),
        sa.Column("status", sa.String(16), nullable=False, server_default="published"),
        sa.Column("source", sa.String(300), nullable=False, server_default=""),
        sa.Column("published_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "notice_pushes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("notice_id", sa.String(64), nullable=False, index=True),
        sa.Column("push_key", sa.String(64), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("original_due_at", TS, nullable=False),
        sa.Column("urgent", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("status", sa.String(16), nullable=False, server_default="scheduled"),
        sa.Column("cursor", sa.String(64)),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", TS),
        sa.Column("queued", sa.Integer, nullable=False, server_default="0"),
        sa.Column("note", sa.Text),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
    )
    op.create_index("ux_notice_pushes_key", "notice_pushes", ["notice_id", "push_key"], unique=True)
    op.create_index("ix_notice_pushes_due", "notice_pushes", ["status", "due_at"])
    op.create_table(
        "notice_subscriptions",
        sa.Column("openid", sa.String(64), primary_key=True),
        sa.Column("category", sa.String(32), primary_key=True),
        sa.Column("subscribed", sa.Boolean, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_notice_subscriptions_category", "notice_subscriptions", ["category", "subscribed"])
    op.create_table(
        "notice_skips",
        sa.Column("notice_id", sa.String(64), primary_key=True),
        sa.Column("push_key", sa.String(64), primary_key=True),
        sa.Column("openid", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("at", TS, nullable=False),
    )
    op.create_table(
        "notice_signups",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("notice_id", sa.String(64), nullable=False),
        sa.Column("openid", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ux_notice_signups", "notice_signups", ["notice_id", "openid"], unique=True)
    op.create_table(
        "notice_resident_tags",
        sa.Column("openid", sa.String(64), primary_key=True),
        sa.Column("tag", sa.String(32), primary_key=True),
    )
    op.create_table(
        "notice_daily_counts",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("queued", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "announcements",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False, index=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("published_on", sa.String(10), nullable=False),
        sa.Column("summary", sa.Text, nullable=False, server_default=""),
        sa.Column("link", sa.String(500)),
        sa.Column("source", sa.String(300), nullable=False, server_default=""),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("announcements")
    op.drop_table("notice_daily_counts")
    op.drop_table("notice_resident_tags")
    op.drop_index("ux_notice_signups", table_name="notice_signups")
    op.drop_table("notice_signups")
    op.drop_table("notice_skips")
    op.drop_index("ix_notice_subscriptions_category", table_name="notice_subscriptions")
    op.drop_table("notice_subscriptions")
    op.drop_index("ix_notice_pushes_due", table_name="notice_pushes")
    op.drop_index("ux_notice_pushes_key", table_name="notice_pushes")
    op.drop_table("notice_pushes")
    op.drop_table("notices")
