"""Outbox: count of re-sends caused by "failed: system failed" template receipts.

Revision ID: 0006
Revises: 0004
"""

from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch_alter_table: SQLite cannot drop a column in place on downgrade; a no-op wrapper on PostgreSQL.
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("receipt_retries", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("receipt_retries")
