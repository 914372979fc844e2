"""What the API's handlers reach: the engine, the app's metrics, and the in-memory views of
sessions and portfolio rows (constructor injection; the HTTP edge gets them through
``Depends``)."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lts.api.event_text import EventText
from lts.api.metrics import ApiMetrics
from lts.api.portfolio_rows import PortfolioRows
from lts.api.sessions import SessionCache

if TYPE_CHECKING:
    from lts.engine.engine import Engine


@dataclass
class ApiContext:
    engine: "Engine"
    metrics: ApiMetrics
    sessions: SessionCache
    portfolios: PortfolioRows
    event_text: EventText = field(default_factory=EventText)
