"""Which events make notifications, their JSON and text, and when the daily summary is due."""

import json
from datetime import UTC, datetime, time
from decimal import Decimal

from lts.domain.events import (
    OrderAccepted,
    OrderDenied,
    OrderRejected,
    PortfolioStatusChanged,
    TradingStateChanged,
)
from lts.notify.daily_summary import next_summary
from lts.notify.events import notification_of, text_of
from lts.notify.signature import sign, verify
from lts.notify.telegram import split_text

HEAD = (3, 17, "c-1", "BTC/USDT", "buy", "limit", Decimal("0.5"))


def _order(kind: type, status: str, reason: str = "") -> object:
    return kind(*HEAD, status, Decimal(0), None, Decimal("50000.10"), None, reason,
                1_796_504_400_123_456_000)


def test_only_notable_events_make_notifications() -> None:
    assert notification_of(_order(OrderAccepted, "accepted"), "desk") is None
    assert notification_of(TradingStateChanged(3, "HALTED", "HALTED", 1), "desk") is None
    assert notification_of(object(), "desk") is None


def test_a_rejected_order_as_json_and_as_text() -> None:
    n = notification_of(_order(OrderRejected, "rejected", "insufficient balance"), "desk")
    assert n is not None
    body = json.loads(n.body)
    assert body == {
        "id": "3-17", "type": "order.rejected", "occurred_at": "2026-12-05T21:00:00.123456Z",
        "ts_event": 1_796_504_400_123_456_000, "portfolio": {"id": 3, "name": "desk"},
        "data": {"type": "order.rejected", "portfolio_id": 3, "seq": 17,
                 "client_order_id": "c-1", "symbol": "BTC/USDT", "side": "buy",
                 "order_type": "limit", "quantity": "0.5", "status": "rejected",
                 "filled_quantity": "0", "avg_fill_price": None, "limit_price": "50000.10",
                 "stop_price": None, "reason": "insufficient balance",
                 "ts_event": 1_796_504_400_123_456_000}}
    assert text_of(n) == "[desk] order rejected: buy 0.5 BTC/USDT limit: insufficient balance"
    denied = notification_of(_order(OrderDenied, "denied", "max_position"), "desk")
    assert denied is not None
    assert denied.type == "order.denied"


def test_status_and_kill_switch_changes() -> None:
    error = notification_of(PortfolioStatusChanged(3, "error", "BrokerError: gone", 2, 5), "d")
    assert error is not None
    assert (error.type, error.id) == ("portfolio.error", "3-portfolio.error-5")
    assert text_of(error) == "[d] ERROR: BrokerError: gone (restarts so far: 2)"
    back = notification_of(PortfolioStatusChanged(3, "restarted", "BrokerError: gone", 0, 6),
                           "d")
    assert back is not None
    assert back.type == "portfolio.restarted"
    halt = notification_of(TradingStateChanged(3, "HALTED", "ACTIVE", 7), "d")
    assert halt is not None
    assert json.loads(halt.body)["data"] == {"state": "HALTED", "previous": "ACTIVE"}
    assert text_of(halt) == "[d] trading state ACTIVE -> HALTED"


def test_the_signature_covers_timestamp_and_body() -> None:
    body = b'{"id":"3-17"}'
    signature = sign("whsec_s", 1_800_000_000, body)
    assert signature.startswith("v1=")
    assert verify("whsec_s", "1800000000", signature, body, now=1_800_000_010)
    assert not verify("whsec_s", "1800000001", signature, body, now=1_800_000_010)
    assert not verify("whsec_s", "1800000000", signature, body + b" ", now=1_800_000_010)
    assert not verify("whsec_t", "1800000000", signature, body, now=1_800_000_010)
    assert not verify("whsec_s", "1800000000", signature, body, now=1_800_000_400)  # too old
    assert not verify("whsec_s", "soon", signature, body)


def test_the_daily_summary_is_due_at_the_next_time_of_day_in_utc() -> None:
    at = time(6, 30)
    before = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
    assert next_summary(before, at) == datetime(2026, 12, 5, 6, 30, tzinfo=UTC)
    exactly = datetime(2026, 12, 5, 6, 30, tzinfo=UTC)
    assert next_summary(exactly, at) == datetime(2026, 12, 6, 6, 30, tzinfo=UTC)
    assert next_summary(datetime(2026, 12, 31, 23, 59, tzinfo=UTC), time(0, 0)) == \
        datetime(2027, 1, 1, 0, 0, tzinfo=UTC)


def test_a_long_answer_is_several_messages_cut_between_lines() -> None:
    lines = [f"portfolio {i}: running, ACTIVE, equity 100000" for i in range(500)]
    parts = split_text("\n".join(lines))
    assert len(parts) > 1
    assert all(len(p) <= 4096 for p in parts)
    assert "\n".join(parts).split("\n") == lines
    assert split_text("x" * 5000) == ["x" * 4096, "x" * 904]
    assert split_text("") == [""]
    assert split_text("a\nb", limit=1) == ["a", "b"]
