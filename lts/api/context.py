"""What the API's handlers reach: the engine and the app's metrics (constructor injection; the
HTTP edge gets them through ``Depends``)."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lts.api.event_text import EventText
from lts.api.metrics import ApiMetrics

if TYPE_CHECKING:
    from lts.engine.engine import Engine


@dataclass
class ApiContext:
    engine: "Engine"
    metrics: ApiMetrics
    event_text: EventText = field(default_factory=EventText)
