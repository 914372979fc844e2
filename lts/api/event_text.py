"""Order events as the JSON text WebSocket clients receive, encoded once per event however many
clients are subscribed (the WebSocket sender asks for each event's text)."""

from collections import OrderedDict

import msgspec

from lts.domain.events import OrderEvent

#: The encoder of what WebSocket clients receive live (a replay sends the journal's payload, the
#: same JSON: the order manager encodes it with msgspec's defaults, as here).
encode = msgspec.json.Encoder(decimal_format="string").encode


class EventText:
    """Each event encoded once, however many clients receive it (the last ``size`` kept)."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._texts: OrderedDict[int, tuple[OrderEvent, str]] = OrderedDict()

    def __call__(self, event: OrderEvent) -> str:
        hit = self._texts.get(id(event))
        if hit is not None and hit[0] is event:
            return hit[1]
        text = encode(event).decode()
        self._texts[id(event)] = (event, text)  # the event is kept, so its id is not reused
        if len(self._texts) > self._size:
            self._texts.popitem(last=False)
        return text
