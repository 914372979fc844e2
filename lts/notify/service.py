"""The notifier: committed engine events in, webhooks and Telegram messages out.

Where it sits: a core service in the engine's trading task group (entry point
``lts.plugins.core: notify``, :class:`NotifyService`), beside the API. It subscribes one mailbox
to the bus for order events, portfolio status changes and trading state changes, all published
only once the journal committed them. The mailbox drops the oldest event when full (counted in
the bus's ``dropped``): the engine never waits for the notifier. One task drains it in
batches, turns each event into at most one :class:`~lts.notify.events.Notification` and offers
it to every webhook (:mod:`lts.notify.webhooks`) and chat (:mod:`lts.notify.telegram`) whose
user may see the portfolio (:mod:`lts.notify.audience`); delivery runs in tasks of its own.
"""

from collections.abc import Hashable
from typing import Any, Protocol, runtime_checkable

import aiohttp
import anyio
from anyio.abc import TaskStatus

from lts.bus import Mailbox, Overflow, Subscription
from lts.domain.events import OrderEvent, PortfolioStatusChanged, TradingStateChanged
from lts.engine.facade import EngineFacade
from lts.errors import ConfigError
from lts.notify.audience import Audience
from lts.notify.config import NotifySettings
from lts.notify.events import notification_of
from lts.notify.telegram import TelegramBot
from lts.notify.webhooks import DeliveryLog, WebhookDispatcher, WebhookRoute
from lts.plugins.base import PluginBase, PluginParams
from lts.settings import Settings

__all__ = ["EventSource", "Notifier", "NotifyService", "notify_settings"]

#: what the notifier listens to (each published once committed)
EVENT_TOPICS: tuple[type, ...] = (OrderEvent, PortfolioStatusChanged, TradingStateChanged)


@runtime_checkable
class EventSource(Protocol):
    """Where committed events come from: the engine's facade, or a bus."""

    def subscribe(self, event_type: type, mailbox: Mailbox[Any],
                  key: Hashable | None = None) -> Subscription: ...


def notify_settings(settings: Settings) -> NotifySettings:
    """The ``notify`` section of the settings (defaults when it has none)."""
    section = getattr(settings, "notify", None)
    return section if isinstance(section, NotifySettings) else NotifySettings()


class Notifier:
    def __init__(self, engine: EngineFacade, source: EventSource,
                 settings: NotifySettings | None = None) -> None:
        self.engine = engine
        self.source = source
        self.settings = settings or notify_settings(engine.settings)
        s = self.settings
        self.audience = Audience(engine.db, s.webhooks.refresh_seconds,
                                 usernames=s.telegram.chats.values() if s.telegram.enabled
                                 else ())
        self.mailbox: Mailbox[object] = Mailbox(s.mailbox_capacity, Overflow.DROP_OLDEST,
                                                name="notify")
        self.delivery_log = DeliveryLog(engine.db, s.webhooks.log_keep)
        self.webhooks: WebhookDispatcher | None = None
        self.telegram: TelegramBot | None = None
        self.notifications = 0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        subs = [self.source.subscribe(topic, self.mailbox) for topic in EVENT_TOPICS]
        try:
            async with aiohttp.ClientSession(trust_env=False) as session, \
                    anyio.create_task_group() as tg:
                await tg.start(self.delivery_log.run)
                self.webhooks = WebhookDispatcher(tg, session, self.settings.webhooks,
                                                  self.delivery_log)
                if self.settings.telegram.enabled:
                    self.telegram = TelegramBot(self.engine, self.settings.telegram,
                                                self.audience, session)
                    await tg.start(self.telegram.run)
                task_status.started()
                await self._route()
        finally:
            for sub in subs:
                sub.cancel()

    async def _route(self) -> None:
        assert self.webhooks is not None
        audience, webhooks, telegram = self.audience, self.webhooks, self.telegram
        synced: list[WebhookRoute] | None = None
        while True:
            batch = await self.mailbox.get_batch(512)
            pids = {getattr(e, "portfolio_id", None) for e in batch}
            await audience.refresh(unknown=(p for p in pids if isinstance(p, int)))
            if audience.routes is not synced:  # re-read (here or by the bot's commands)
                synced = audience.routes
                webhooks.sync(synced)
            for event in batch:
                pid = getattr(event, "portfolio_id", 0)
                n = notification_of(event, audience.name(pid))
                if n is None:
                    continue
                self.notifications += 1
                webhooks.offer(n, audience.webhooks_for(n))
                if telegram is not None:
                    telegram.offer(n)


class NotifyService(PluginBase):
    """Core plugin ``notify``: the :class:`Notifier`, run in the engine's task group."""

    Params = PluginParams
    plugin_name = "notify"

    async def serve(self, engine: EngineFacade, *, task_status: TaskStatus[None]) -> None:
        if not isinstance(engine, EventSource):
            raise ConfigError("notify: the engine's facade offers no subscribe(event_type, "
                              "mailbox, key) for committed events")
        await Notifier(engine, engine).run(task_status=task_status)
