"""Portfolio leases, instrument rules of assets, order anomalies.

- ``portfolios.lease_token`` (fencing token, bumped by every engine that takes the portfolio's
  lease; every journal write of the portfolio is checked against it) and ``lease_owner`` (which
  engine holds it: ``host:pid``, for the operator and for the refusal message).
- ``assets.min_quantity`` and ``assets.min_notional``: instrument rules besides the tick and lot
  size (NULL: no minimum).
- ``orders.anomaly``: set when a venue reported something the order's state did not allow (a fill
  after the order was closed, more than the ordered quantity, an order LTS never sent): the
  order is marked for reconciliation.
- The ``paper`` broker takes its price grid and lot size from the asset now: its old params
  ``price_increment`` and ``lot_size`` are dropped from stored ``broker_params`` (they would be
  refused as unknown and the portfolio would not start).

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
    _drop_paper_params()


_OLD_PAPER_PARAMS = ("price_increment", "lot_size")


def _drop_paper_params() -> None:
    assets = sa.table("assets", sa.column("id", sa.Integer()),
                      sa.column("broker_plugin", sa.String()),
                      sa.column("broker_params", sa.JSON()))
    bind = op.get_bind()
    rows = bind.execute(sa.select(assets.c.id, assets.c.broker_params)
                        .where(assets.c.broker_plugin == "paper")).all()
    changed = [{"b_id": id_, "broker_params": {k: v for k, v in params.items()
                                               if k not in _OLD_PAPER_PARAMS}}
               for id_, params in rows
               if isinstance(params, dict) and set(params) & set(_OLD_PAPER_PARAMS)]
    if changed:
        bind.execute(sa.update(assets).where(assets.c.id == sa.bindparam("b_id"))
                     .values(broker_params=sa.bindparam("broker_params")), changed)


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("anomaly")
    with op.batch_alter_table("assets") as batch:
        batch.drop_column("min_notional")
        batch.drop_column("min_quantity")
    with op.batch_alter_table("portfolios") as batch:
        batch.drop_column("lease_owner")
        batch.drop_column("lease_token")
