"""Initial schema: every table of ``lts.persistence.tables``.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from lts.persistence.types import Money

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.Column[object]:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                     server_default=sa.func.current_timestamp())


def _pk(table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}"))


def _portfolio_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["portfolio_id"], ["portfolios.id"], ondelete="CASCADE",
                                   name=op.f(f"fk_{table}_portfolio_id_portfolios"))


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("password_hash", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), server_default="viewer", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default="1", nullable=False),
        _now(),
        sa.CheckConstraint("role IN ('admin', 'trader', 'viewer')", name=op.f("ck_users_role")),
        _pk("users"),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("family_id", sa.String(64), nullable=False),
        sa.Column("refresh_hash", sa.String(128), nullable=True),
        _now(),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client_address", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_sessions_user_id_users")),
        _pk("sessions"),
    )
    op.create_index(op.f("ix_sessions_user_id"), "sessions", ["user_id"])
    op.create_table(
        "portfolios",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("portfolio_plugin", sa.String(64), server_default="fixed_fraction",
                  nullable=False),
        sa.Column("portfolio_params", sa.JSON(), nullable=False),
        sa.Column("initial_cash", Money(), nullable=False),
        sa.Column("risk_params", sa.JSON(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("trading_state", sa.String(16), server_default="ACTIVE", nullable=False),
        sa.Column("status", sa.String(16), server_default="stopped", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        _now(),
        sa.CheckConstraint("trading_state IN ('ACTIVE', 'REDUCING', 'HALTED')",
                           name=op.f("ck_portfolios_trading_state")),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="SET NULL",
                                name=op.f("fk_portfolios_owner_id_users")),
        _pk("portfolios"),
        sa.UniqueConstraint("name", name=op.f("uq_portfolios_name")),
    )
    op.create_table(
        "assets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portfolio_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("strategy_plugin", sa.String(64), nullable=False),
        sa.Column("strategy_params", sa.JSON(), nullable=False),
        sa.Column("broker_plugin", sa.String(64), nullable=False),
        sa.Column("broker_params", sa.JSON(), nullable=False),
        sa.Column("pipeline_plugin", sa.String(64), nullable=False),
        sa.Column("pipeline_params", sa.JSON(), nullable=False),
        sa.Column("tick_size", Money(), nullable=False),
        sa.Column("lot_size", Money(), nullable=False),
        _now(),
        _portfolio_fk("assets"),
        _pk("assets"),
        sa.UniqueConstraint("portfolio_id", "symbol", name=op.f("uq_assets_portfolio_id_symbol")),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("portfolio_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("order_type", sa.String(16), nullable=False),
        sa.Column("time_in_force", sa.String(8), nullable=False),
        sa.Column("quantity", Money(), nullable=False),
        sa.Column("limit_price", Money(), nullable=True),
        sa.Column("stop_price", Money(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("filled_quantity", Money(), nullable=False),
        sa.Column("avg_fill_price", Money(), nullable=True),
        sa.Column("broker", sa.String(64), nullable=False),
        sa.Column("broker_order_id", sa.String(128), nullable=True),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("tag", sa.String(64), server_default="", nullable=False),
        sa.Column("ts_init", sa.BigInteger(), nullable=False),
        sa.Column("ts_last", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_orders_side")),
        sa.CheckConstraint("CAST(quantity AS REAL) > 0",
                           name=op.f("ck_orders_quantity_positive")),
        _portfolio_fk("orders"),
        _pk("orders"),
        sa.UniqueConstraint("client_order_id", name=op.f("uq_orders_client_order_id")),
    )
    op.create_index("ix_orders_portfolio_status", "orders", ["portfolio_id", "status"])
    op.create_table(
        "fills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portfolio_id", sa.Integer(), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("broker", sa.String(64), nullable=False),
        sa.Column("trade_id", sa.String(128), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("quantity", Money(), nullable=False),
        sa.Column("price", Money(), nullable=False),
        sa.Column("fee", Money(), nullable=False),
        sa.Column("ts_event", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_fills_side")),
        sa.CheckConstraint("CAST(quantity AS REAL) > 0",
                           name=op.f("ck_fills_quantity_positive")),
        sa.ForeignKeyConstraint(["client_order_id"], ["orders.client_order_id"],
                                name=op.f("fk_fills_client_order_id_orders")),
        _portfolio_fk("fills"),
        _pk("fills"),
        sa.UniqueConstraint("broker", "trade_id", name=op.f("uq_fills_broker_trade_id")),
    )
    op.create_index(op.f("ix_fills_client_order_id"), "fills", ["client_order_id"])
    op.create_index("ix_fills_portfolio_symbol", "fills", ["portfolio_id", "symbol"])
    op.create_table(
        "positions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portfolio_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("quantity", Money(), nullable=False),
        sa.Column("avg_price", Money(), nullable=False),
        sa.Column("realized_pnl", Money(), nullable=False),
        sa.Column("fees", Money(), nullable=False),
        sa.Column("ts_last", sa.BigInteger(), nullable=False),
        _portfolio_fk("positions"),
        _pk("positions"),
        sa.UniqueConstraint("portfolio_id", "symbol",
                            name=op.f("uq_positions_portfolio_id_symbol")),
    )
    op.create_table(
        "order_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portfolio_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("ts_event", sa.BigInteger(), nullable=False),
        _portfolio_fk("order_events"),
        _pk("order_events"),
        sa.UniqueConstraint("portfolio_id", "seq", name=op.f("uq_order_events_portfolio_id_seq")),
    )
    op.create_table(
        "audit_logs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.current_timestamp()),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), server_default="", nullable=False),
        sa.Column("client_address", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        _pk("audit_logs"),
    )
    op.create_index("ix_audit_logs_action_ts", "audit_logs", ["action", "ts"])
    op.create_table(
        "configuration",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.current_timestamp()),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_configuration")),
    )
    op.create_table(
        "statistics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portfolio_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", Money(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.current_timestamp()),
        _portfolio_fk("statistics"),
        _pk("statistics"),
    )
    op.create_index("ix_statistics_name_ts", "statistics", ["name", "ts"])


def downgrade() -> None:
    # Children first; dropping a table drops its indexes with it.
    for table in ("statistics", "configuration", "audit_logs", "order_events", "positions",
                  "fills", "orders", "assets", "portfolios", "sessions", "users"):
        op.drop_table(table)
