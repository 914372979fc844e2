"""Fills: ``commission``, a fee the venue took in the traded asset itself.

Binance takes its commission from what a buy receives (a buy of 1 BTC credits 0.999 BTC);
``fills.commission`` keeps that amount (0 for every fill before it, and wherever the fee is paid
in the quote currency, ``fills.fee``), so that a position rebuilt from fills holds what the
venue holds.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from lts.persistence.types import Money

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fills") as batch:
        batch.add_column(sa.Column("commission", Money(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("fills") as batch:
        batch.drop_column("commission")
