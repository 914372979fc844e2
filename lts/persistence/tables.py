"""The schema: SQLAlchemy Core tables shared by the journal, the repositories and Alembic.

Seed §3.1 tables plus what the order flow needs: ``order_events`` is the journal of order events
with a per-portfolio sequence number (the WebSocket resumes from it). Constraint names follow
:data:`NAMING` so Alembic batch mode on SQLite can address them. Money columns use
:class:`~lts.persistence.types.Money`; event times are integer nanoseconds. A CHECK on a Money
column casts to REAL: on SQLite Money is text, and ``quantity > 0`` would compare text (``'0.0'``
would pass).

``broker_credentials`` holds each user's broker API keys sealed with AES-GCM
(:mod:`lts.persistence.keyring`): the nonce, the ciphertext and the version of the master key
that sealed it; never the plain text.

``webhooks`` are each user's notification endpoints (:mod:`lts.notify`): the URL, the event
types it wants, an optional portfolio it is limited to, and the secret its requests are signed
with (HMAC-SHA256; the receiver holds the same secret, so it is kept as given and shown only once
by the API). ``webhook_deliveries`` logs every attempt to deliver a notification to one.
"""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from lts.persistence.types import Money

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


def _created() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False,
                  server_default=func.current_timestamp())


users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("email", String(254), nullable=True),
    Column("password_hash", String(128), nullable=False),
    Column("role", String(16), nullable=False, server_default="viewer"),
    Column("is_active", Boolean, nullable=False, server_default="1"),
    _created(),
    CheckConstraint("role IN ('admin', 'trader', 'viewer')", name="role"),
)

sessions = Table(
    "sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("family_id", String(64), nullable=False),
    Column("refresh_hash", String(128), nullable=True),
    _created(),
    Column("last_seen_at", DateTime(timezone=True), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("client_address", String(64), nullable=True),
)

portfolios = Table(
    "portfolios", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("portfolio_plugin", String(64), nullable=False, server_default="fixed_fraction"),
    Column("portfolio_params", JSON, nullable=False, default=dict),
    Column("initial_cash", Money, nullable=False),
    Column("risk_params", JSON, nullable=False, default=dict),
    Column("is_active", Boolean, nullable=False, server_default="1"),
    Column("trading_state", String(16), nullable=False, server_default="ACTIVE"),
    Column("status", String(16), nullable=False, server_default="stopped"),
    Column("last_error", Text, nullable=True),
    _created(),
    # fencing: bumped by each engine that takes the portfolio's lease (lts.persistence.leases)
    Column("lease_token", BigInteger, nullable=False, server_default="0"),
    Column("lease_owner", String(128), nullable=True),
    CheckConstraint("trading_state IN ('ACTIVE', 'REDUCING', 'HALTED')", name="trading_state"),
)

assets = Table(
    "assets", metadata,
    Column("id", Integer, primary_key=True),
    Column("portfolio_id", Integer, ForeignKey("portfolios.id", ondelete="CASCADE"),
           nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("is_active", Boolean, nullable=False, server_default="1"),
    Column("strategy_plugin", String(64), nullable=False),
    Column("strategy_params", JSON, nullable=False, default=dict),
    Column("broker_plugin", String(64), nullable=False),
    Column("broker_params", JSON, nullable=False, default=dict),
    Column("pipeline_plugin", String(64), nullable=False),
    Column("pipeline_params", JSON, nullable=False, default=dict),
    Column("tick_size", Money, nullable=False),
    Column("lot_size", Money, nullable=False),
    _created(),
    Column("min_quantity", Money, nullable=True),
    Column("min_notional", Money, nullable=True),
    UniqueConstraint("portfolio_id", "symbol"),
)

orders = Table(
    "orders", metadata,
    Column("id", Integer, primary_key=True),
    Column("client_order_id", String(64), nullable=False, unique=True),
    Column("portfolio_id", Integer, ForeignKey("portfolios.id", ondelete="CASCADE"),
           nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("side", String(4), nullable=False),
    Column("order_type", String(16), nullable=False),
    Column("time_in_force", String(8), nullable=False),
    Column("quantity", Money, nullable=False),
    Column("limit_price", Money, nullable=True),
    Column("stop_price", Money, nullable=True),
    Column("status", String(20), nullable=False),
    Column("filled_quantity", Money, nullable=False),
    Column("avg_fill_price", Money, nullable=True),
    Column("broker", String(64), nullable=False),
    Column("broker_order_id", String(128), nullable=True),
    Column("reason", Text, nullable=False, server_default=""),
    Column("tag", String(64), nullable=False, server_default=""),
    Column("ts_init", BigInteger, nullable=False),
    Column("ts_last", BigInteger, nullable=False),
    # what a venue reported that the order's state did not allow; the order needs reconciling
    Column("anomaly", String(32), nullable=True),
    CheckConstraint("side IN ('buy', 'sell')", name="side"),
    CheckConstraint("CAST(quantity AS REAL) > 0", name="quantity_positive"),
    Index("ix_orders_portfolio_status", "portfolio_id", "status"),
)

fills = Table(
    "fills", metadata,
    Column("id", Integer, primary_key=True),
    Column("portfolio_id", Integer, ForeignKey("portfolios.id", ondelete="CASCADE"),
           nullable=False),
    Column("client_order_id", String(64), ForeignKey("orders.client_order_id"), nullable=False,
           index=True),
    Column("broker", String(64), nullable=False),
    Column("trade_id", String(128), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("side", String(4), nullable=False),
    Column("quantity", Money, nullable=False),
    Column("price", Money, nullable=False),
    Column("fee", Money, nullable=False),
    Column("ts_event", BigInteger, nullable=False),
    # a fee taken in the traded asset itself (domain Fill.commission)
    Column("commission", Money, nullable=False, server_default="0"),
    UniqueConstraint("broker", "trade_id"),
    CheckConstraint("side IN ('buy', 'sell')", name="side"),
    CheckConstraint("CAST(quantity AS REAL) > 0", name="quantity_positive"),
    Index("ix_fills_portfolio_symbol", "portfolio_id", "symbol"),
    Index("ix_fills_portfolio_id_id", "portfolio_id", "id"),  # a portfolio's, as written
)

positions = Table(
    "positions", metadata,
    Column("id", Integer, primary_key=True),
    Column("portfolio_id", Integer, ForeignKey("portfolios.id", ondelete="CASCADE"),
           nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("quantity", Money, nullable=False),
    Column("cost", Money, nullable=False),  # signed cost basis, exact; avg_price = cost / quantity
    Column("avg_price", Money, nullable=False),
    Column("realized_pnl", Money, nullable=False),
    Column("fees", Money, nullable=False),
    Column("ts_last", BigInteger, nullable=False),
    UniqueConstraint("portfolio_id", "symbol"),
)

order_events = Table(
    "order_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("portfolio_id", Integer, ForeignKey("portfolios.id", ondelete="CASCADE"),
           nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(32), nullable=False),
    Column("client_order_id", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("ts_event", BigInteger, nullable=False),
    UniqueConstraint("portfolio_id", "seq"),
)

audit_logs = Table(
    "audit_logs", metadata,
    Column("id", Integer, primary_key=True),
    Column("ts", DateTime(timezone=True), nullable=False, server_default=func.current_timestamp()),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(128), nullable=False, server_default=""),
    Column("client_address", String(64), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("detail", JSON, nullable=False, default=dict),
    Index("ix_audit_logs_action_ts", "action", "ts"),
)

configuration = Table(
    "configuration", metadata,
    Column("key", String(128), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_by", String(64), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False,
           server_default=func.current_timestamp()),
)

statistics = Table(
    "statistics", metadata,
    Column("id", Integer, primary_key=True),
    Column("portfolio_id", Integer, ForeignKey("portfolios.id", ondelete="CASCADE"),
           nullable=True),
    Column("name", String(64), nullable=False),
    Column("value", Money, nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False, server_default=func.current_timestamp()),
    Index("ix_statistics_name_ts", "name", "ts"),
)

broker_credentials = Table(
    "broker_credentials", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("broker", String(64), nullable=False),
    Column("key_version", String(16), nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    _created(),
    Column("updated_at", DateTime(timezone=True), nullable=False,
           server_default=func.current_timestamp()),
    UniqueConstraint("user_id", "broker"),
)

webhooks = Table(
    "webhooks", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("url", String(2048), nullable=False),
    Column("event_types", JSON, nullable=False),
    Column("portfolio_id", Integer, ForeignKey("portfolios.id", ondelete="CASCADE"),
           nullable=True),
    Column("secret", String(128), nullable=False),
    Column("description", String(200), nullable=False, server_default=""),
    Column("active", Boolean, nullable=False, server_default="1"),
    _created(),
    Column("updated_at", DateTime(timezone=True), nullable=False,
           server_default=func.current_timestamp()),
)

webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", Integer, primary_key=True),
    Column("webhook_id", Integer, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("portfolio_id", Integer, nullable=True),
    Column("attempt", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("http_status", Integer, nullable=True),
    Column("error", String(200), nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False, server_default=func.current_timestamp()),
    CheckConstraint("outcome IN ('delivered', 'retrying', 'failed')", name="outcome"),
    Index("ix_webhook_deliveries_webhook_id_id", "webhook_id", "id"),
)
