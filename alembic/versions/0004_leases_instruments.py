"""Portfolio leases, instrument rules of assets, order anomalies.

- ``portfolios.lease_token`` (fencing token, bumped by every engine that takes the portfolio's
  lease; every journal write of the portfolio is checked against it) and ``lease_owner`` (which
  engine holds it: ``host:pid``, for the operator and for the refusal message).
- ``assets.min_quantity`` and ``assets.min_notional``: instrument rules besides the tick and lot
  size (NULL: no minimum).
- ``orders.anomaly``: set when a venue reported something the order's state did not allow (a fill
  after the order was closed, more than the ordered quantity, an order LTS never sent): the
  order is marked for reconciliation.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from lts.persistence.types import Money

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("portfolios") as batch:
        batch.add_column(sa.Column("lease_token", sa.BigInteger(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("lease_owner", sa.String(128), nullable=True))
    with op.batch_alter_table("assets") as batch:
        batch.add_column(sa.Column("min_quantity", Money(), nullable=True))
        batch.add_column(sa.Column("min_notional", Money(), nullable=True))
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("anomaly", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("anomaly")
    with op.batch_alter_table("assets") as batch:
        batch.drop_column("min_notional")
        batch.drop_column("min_quantity")
    with op.batch_alter_table("portfolios") as batch:
        batch.drop_column("lease_owner")
        batch.drop_column("lease_token")
