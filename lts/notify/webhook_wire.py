"""What the engine and its webhook delivery process say to each other, and how it is framed.

Where it sits: between :mod:`lts.notify.webhook_outbox` (the engine's side) and
:mod:`lts.notify.webhook_worker` (the delivery process), over the process's standard input and
output. Each message is a msgpack frame (msgspec) behind its length, 4 bytes big-endian.

Engine -> process: :class:`Start` (once, first), :class:`Routes` (the active webhooks, whenever
they change), :class:`Offer` (notifications, each with the webhooks that get it; one frame per
batch), :class:`Stop`. Process -> engine: :class:`Report` (the delivery totals and the process's
log records), a few times a second while it has something to say. The attempts' rows go from the
process to the database, never through the engine.
"""

import struct
from typing import Any, BinaryIO, Literal

import msgspec

__all__ = ["Item", "LogLine", "Message", "Offer", "Report", "Routes", "Start", "Stop",
           "WebhookRoute", "decode", "encode", "read_frame", "unpack_length"]

HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024


class Start(msgspec.Struct, tag=True, frozen=True):
    """The delivery settings (``notify.webhooks``, as JSON values), the log level, and the
    database the delivery log is written to."""

    settings: dict[str, Any]
    log_level: str
    database_url: str
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL"] = "FULL"


class WebhookRoute(msgspec.Struct, frozen=True):
    """An active webhook as the notifier routes to it."""

    id: int
    user_id: int
    role: str
    url: str
    secret: str
    event_types: frozenset[str]
    portfolio_id: int | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> "WebhookRoute":
        return cls(row["id"], row["user_id"], row["role"], row["url"], row["secret"],
                   frozenset(row["event_types"] or ()), row["portfolio_id"])


class Routes(msgspec.Struct, tag=True, frozen=True):
    routes: list[WebhookRoute]


class Item(msgspec.Struct, frozen=True, array_like=True):
    """One notification (its id, type, portfolio and signed body) and the webhooks it goes to."""

    id: str
    type: str
    portfolio_id: int
    body: bytes
    webhooks: list[int]


class Offer(msgspec.Struct, tag=True, frozen=True):
    items: list[Item]


class Stop(msgspec.Struct, tag=True, frozen=True):
    pass


class LogLine(msgspec.Struct, frozen=True, array_like=True):
    level: int
    logger: str
    message: str


class Report(msgspec.Struct, tag=True, frozen=True):
    totals: dict[str, int]
    log: list[LogLine] = []


Message = Start | Routes | Offer | Stop | Report

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def encode(message: Message) -> bytes:
    """``message`` as one frame: its length, then its msgpack."""
    payload = _encoder.encode(message)
    return HEADER.pack(len(payload)) + payload


def unpack_length(header: bytes) -> int:
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ValueError(f"webhook delivery: a frame of {length} bytes (at most {MAX_FRAME})")
    return int(length)


def decode(payload: bytes) -> Message:
    message: Message = _decoder.decode(payload)
    return message


def read_frame(stream: BinaryIO) -> Message | None:
    """The next message from a blocking stream; None at its end (the other side is gone)."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    length = unpack_length(header)
    payload = stream.read(length)
    if len(payload) < length:
        return None
    return decode(payload)
