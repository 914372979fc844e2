"""Positions keep their exact cost basis: column ``positions.cost``.

The journal's PostgreSQL path recomputes a position from its locked row (several writers may
fill one position), and ``avg_price`` (``cost / quantity``, rounded to the column's scale) cannot
give the cost back exactly. Existing rows get ``avg_price * quantity``, the best they hold.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa

from alembic import op
from lts.persistence.types import Money

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_positions = sa.table("positions", sa.column("id", sa.Integer()), sa.column("quantity", Money()),
                      sa.column("avg_price", Money()), sa.column("cost", Money()))


def upgrade() -> None:
    with op.batch_alter_table("positions") as batch:
        batch.add_column(sa.Column("cost", Money(), nullable=False, server_default="0"))
    bind = op.get_bind()
    rows = bind.execute(sa.select(_positions.c.id, _positions.c.quantity,
                                  _positions.c.avg_price)).all()
    if rows:
        bind.execute(sa.update(_positions).where(_positions.c.id == sa.bindparam("b_id")),
                     [{"b_id": id_, "cost": Decimal(avg) * Decimal(qty)}
                      for id_, qty, avg in rows])
    with op.batch_alter_table("positions") as batch:
        batch.alter_column("cost", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("positions") as batch:
        batch.drop_column("cost")
