"""Residents: when each openid last did something that opens WeChat's 48-hour customer-service window.

Revision ID: 0008
Revises: 0007

Written by the journal's group commit (at most once per openid per ``Journal.INBOUND_EVERY`` and
process), read before a customer-service message to a grid worker: when the window is known to be
closed the worker gets a template message straight away instead of a 45015. Not backfilled: until an
openid writes again it is unknown, and unknown means "try the customer-service message".
"""

from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch_alter_table: SQLite cannot drop a column in place on downgrade; a no-op wrapper on PostgreSQL.
    with op.batch_alter_table("residents") as batch:
        batch.add_column(sa.Column("last_inbound_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("residents") as batch:
        batch.drop_column("last_inbound_at")
