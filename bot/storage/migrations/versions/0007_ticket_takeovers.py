"""Tickets: live 转人工 takeovers; drop the dead ``handoffs`` table (转人工 requests are tickets).

Revision ID: 0007
Revises: 0006
"""

from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ticket_takeovers",
        sa.Column("ticket_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("openid", sa.String(64), nullable=False),
        sa.Column("worker_id", sa.Integer, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("active_at", TS, nullable=False),
        sa.Column("acked_at", TS),
        sa.Column("ended_at", TS),
        sa.Column("end_reason", sa.String(16)),
    )
    op.create_index("ix_ticket_takeovers_openid", "ticket_takeovers", ["openid", "ended_at"])
    op.create_index("ix_ticket_takeovers_open", "ticket_takeovers", ["ended_at", "active_at"])
    # Nothing has written ``handoffs`` since 转人工 became a ticket kind: its rows (if any) are old
    # requests that were never routed; they are dropped with it.
    op.drop_index("ix_handoffs_status_created", table_name="handoffs")
    op.drop_table("handoffs")


def downgrade() -> None:
    op.create_table(
        "handoffs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("openid", sa.String(64), nullable=False, index=True),
        sa.Column("text", sa.Text, nullable=False, server_default=""),
        sa.Column("item", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("closed_at", TS),
    )
    op.create_index("ix_handoffs_status_created", "handoffs", ["status", "created_at"])
    op.drop_index("ix_ticket_takeovers_open", table_name="ticket_takeovers")
    op.drop_index("ix_ticket_takeovers_openid", table_name="ticket_takeovers")
    op.drop_table("ticket_takeovers")
