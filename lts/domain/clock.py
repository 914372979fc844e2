"""The clock every timestamp comes from. The engine injects a live clock (wall time) or a
replay clock (the time of the bar being replayed); plugins and the domain only see this protocol.
"""

from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int:
        """Nanoseconds since the Unix epoch, as this run sees time."""
        ...
