"""What the API's handlers reach: the engine's facade, the app's metrics, the in-memory views of
sessions and portfolio rows, the reader (database reads off the loop) and the aaa plugin
(constructor injection; the HTTP edge gets them through ``Depends``)."""

from dataclasses import dataclass, field
from functools import cached_property

from lts.api.event_text import EventText
from lts.api.metrics import ApiMetrics
from lts.api.portfolio_rows import PortfolioRows
from lts.api.sessions import SessionCache
from lts.engine.facade import EngineFacade
from lts.persistence.reader import Reader
from lts.plugins.aaa.local import LocalAuth


@dataclass
class ApiContext:
    engine: EngineFacade
    metrics: ApiMetrics
    sessions: SessionCache
    portfolios: PortfolioRows
    reader: Reader
    event_text: EventText = field(default_factory=EventText)

    @cached_property
    def auth(self) -> LocalAuth:
        """The aaa plugin named by ``auth.plugin``, made from the registry on first use."""
        settings = self.engine.settings
        auth: LocalAuth | None = self.engine.registry.create("aaa", settings.auth.plugin)
        assert auth is not None
        auth.configure(settings)
        return auth
