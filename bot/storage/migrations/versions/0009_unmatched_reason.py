"""Unmatched questions: why each is in the review queue.

Revision ID: 0009
Revises: 0008

"fallback" (the bot had no answer; every row before this revision) or "wrong" (the resident replied
不是这个 / 答错了 to an answer: the question is kept with the item that was answered, so admins see what
the matcher got wrong, not only what it could not read).
"""

from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("unmatched_questions") as batch:
        batch.add_column(sa.Column("reason", sa.String(16), nullable=False, server_default="fallback"))


def downgrade() -> None:
    with op.batch_alter_table("unmatched_questions") as batch:
        batch.drop_column("reason")
