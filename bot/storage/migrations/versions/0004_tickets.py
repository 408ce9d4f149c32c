"""Tickets: grids, grid workers, residents' grids, invite codes, tickets, audit trail, timers, followers.

Revision ID: 0004
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "grids",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("areas", sa.JSON, nullable=False),
        sa.Column("polygon", sa.JSON),
        sa.Column("worker_id", sa.Integer),
        sa.Column("backup_id", sa.Integer),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "grid_workers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("phone", sa.String(20), nullable=False, unique=True),
        sa.Column("role", sa.String(8), nullable=False, server_default="worker"),
        sa.Column("openid", sa.String(64), unique=True),
        sa.Column("on_leave", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "resident_grids",
        sa.Column("openid", sa.String(64), primary_key=True),
        sa.Column("grid_id", sa.String(32)),
        sa.Column("via", sa.String(16)),
        sa.Column("address", sa.String(200)),
        sa.Column("phone", sa.String(20)),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "worker_invites",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("worker_id", sa.Integer, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS),
        sa.Column("used_by", sa.String(64)),
    )
    op.create_table(
        "tickets",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("openid", sa.String(64), nullable=False),
        sa.Column("grid_id", sa.String(32)),
        sa.Column("worker_id", sa.Integer),
        sa.Column("item_id", sa.String(64)),
        sa.Column("item_name", sa.String(64)),
        sa.Column("checklist", sa.JSON),
        sa.Column("content", sa.Text, nullable=False, server_default=""),
        sa.Column("address", sa.String(200)),
        sa.Column("phone", sa.String(20)),
        sa.Column("time_window", sa.String(64)),
        sa.Column("media", sa.JSON),
        sa.Column("latitude", sa.Float),
        sa.Column("longitude", sa.Float),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("rating", sa.String(8)),
        sa.Column("reopened", sa.Integer, nullable=False, server_default="0"),
        sa.Column("extension", sa.String(16)),
        sa.Column("extension_hours", sa.Integer),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("accept_due_at", TS),
        sa.Column("done_due_at", TS),
        sa.Column("accepted_at", TS),
        sa.Column("done_at", TS),
        sa.Column("rated_at", TS),
    )
    op.create_index("ix_tickets_worker_open", "tickets", ["worker_id", "status", "created_at"])
    op.create_index("ix_tickets_openid", "tickets", ["openid", "created_at"])
    op.create_index("ix_tickets_fingerprint", "tickets", ["fingerprint", "created_at"])
    op.create_index("ix_tickets_grid_status", "tickets", ["grid_id", "kind", "status", "created_at"])
    op.create_table(
        "ticket_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.BigInteger, nullable=False, index=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16)),
        sa.Column("note", sa.Text),
        sa.Column("data", sa.JSON),
    )
    op.create_table(
        "ticket_timers",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.BigInteger, nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("state", sa.String(12), nullable=False, server_default="waiting"),
    )
    op.create_index("ix_ticket_timers_due", "ticket_timers", ["state", "due_at"])
    op.create_table(
        "ticket_followers",
        sa.Column("ticket_id", sa.BigInteger, primary_key=True),
        sa.Column("openid", sa.String(64), primary_key=True),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ticket_followers")
    op.drop_index("ix_ticket_timers_due", table_name="ticket_timers")
    op.drop_table("ticket_timers")
    op.drop_table("ticket_events")
    for name in ("ix_tickets_grid_status", "ix_tickets_fingerprint", "ix_tickets_openid", "ix_tickets_worker_open"):
        op.drop_index(name, table_name="tickets")
    op.drop_table("tickets")
    op.drop_table("worker_invites")
    op.drop_table("resident_grids")
    op.drop_table("grid_workers")
    op.drop_table("grids")
