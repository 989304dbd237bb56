"""forecasts: each hour's forecast the console obtained (symbol, hour, model version, quantiles)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecasts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("target_hour", sa.DateTime(), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("last_close", sa.Float(), nullable=False),
        sa.Column("quantiles", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forecasts")),
        sa.UniqueConstraint("symbol", "target_hour", "model_version", name=op.f("uq_forecasts_symbol")),
    )


def downgrade() -> None:
    op.drop_table("forecasts")
