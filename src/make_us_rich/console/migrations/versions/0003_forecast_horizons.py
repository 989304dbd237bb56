"""forecasts.horizon: the hours ahead of a recorded forecast (issue 22; the rows before it are
the next hour's), part of the key: one row per symbol, target hour, model version and horizon

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("forecasts") as batch:
        batch.add_column(sa.Column("horizon", sa.Integer(), nullable=False, server_default="1"))
        batch.drop_constraint("uq_forecasts_symbol", type_="unique")
        batch.create_unique_constraint("uq_forecasts_symbol", ["symbol", "target_hour", "model_version", "horizon"])


def downgrade() -> None:
    with op.batch_alter_table("forecasts") as batch:
        batch.drop_constraint("uq_forecasts_symbol", type_="unique")
    op.execute("DELETE FROM forecasts WHERE horizon <> 1")
    with op.batch_alter_table("forecasts") as batch:
        batch.create_unique_constraint("uq_forecasts_symbol", ["symbol", "target_hour", "model_version"])
        batch.drop_column("horizon")
