"""Order events as the JSON text WebSocket clients receive, encoded once per event however many
clients are subscribed (the WebSocket sender asks for each event's text).

Each message is the event's JSON (as the journal stores it) with one field added at its end:
``time_event``, the event's ``ts_event`` (nanoseconds since 1970 UTC) as an ISO 8601 UTC time
to the microsecond, written as the REST answers write times (``2026-12-05T23:20:12.123456Z``).
A live event and its replay (the journal's stored payload) go through :func:`with_time`: the
same text either way.
"""

from collections import OrderedDict

import msgspec

from lts.api.portfolio_schemas import iso_time
from lts.domain.events import OrderEvent

__all__ = ["EventText", "encode", "iso_text", "with_time"]

#: The encoder of what WebSocket clients receive live (a replay sends the journal's payload, the
#: same JSON: the order manager encodes it with msgspec's defaults, as here).
encode = msgspec.json.Encoder(decimal_format="string").encode


def iso_text(ns: int) -> str:
    """Nanoseconds since the epoch as the REST answers show a time: ISO 8601 UTC, to the
    microsecond (no fraction when it is zero), ending in ``Z``."""
    return iso_time(ns).isoformat().replace("+00:00", "Z")


def with_time(payload: str, ts_event: int) -> str:
    """An event's JSON object (``payload``) with its ``time_event`` added as the last field."""
    return f'{payload.rstrip()[:-1]},"time_event":"{iso_text(ts_event)}"}}'


class EventText:
    """Each event encoded once, however many clients receive it (the last ``size`` kept)."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._texts: OrderedDict[int, tuple[OrderEvent, str]] = OrderedDict()

    def __call__(self, event: OrderEvent) -> str:
        hit = self._texts.get(id(event))
        if hit is not None and hit[0] is event:
            return hit[1]
        text = with_time(encode(event).decode(), event.ts_event)
        self._texts[id(event)] = (event, text)  # the event is kept, so its id is not reused
        if len(self._texts) > self._size:
            self._texts.popitem(last=False)
        return text
