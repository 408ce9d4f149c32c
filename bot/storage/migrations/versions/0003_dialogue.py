"""Dialogue: unmatched questions for review and 转人工 hand-offs.

Revision ID: 0003
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "unmatched_questions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("openid", sa.String(64), nullable=False, index=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("normalized", sa.Text, nullable=False, server_default=""),
        sa.Column("candidates", sa.JSON, nullable=False),
        sa.Column("score", sa.Float, nullable=False, server_default="0"),
        sa.Column("knowledge_version", sa.String(32)),
        sa.Column("created_at", TS, nullable=False, index=True),
    )
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


def downgrade() -> None:
    op.drop_index("ix_handoffs_status_created", table_name="handoffs")
    op.drop_table("handoffs")
    op.drop_table("unmatched_questions")
