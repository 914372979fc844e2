"""An index on ``fills (portfolio_id, id)``: a portfolio's fills in the order they were
written, so the dashboard's reads (the fills after the last one it applied; the latest N) touch
only those rows, not every fill of the portfolio.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_fills_portfolio_id_id", "fills", ["portfolio_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_fills_portfolio_id_id", table_name="fills")
