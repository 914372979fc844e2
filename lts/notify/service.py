"""The notifier: committed engine events in, webhooks and Telegram messages out.

Where it sits: a core service in the engine's trading task group (entry point
``lts.plugins.core: notify``, :class:`NotifyService`), beside the API. It subscribes one mailbox
to the bus for order events, portfolio status changes and trading state changes, all published
only once the journal committed them. The mailbox drops the oldest event when full (counted in
the bus's ``dropped``): the engine never waits for the notifier. One task drains it in
batches, turns each event into at most one :class:`~lts.notify.events.Notification` and offers
it to every webhook and chat (:mod:`lts.notify.telegram`) whose user may see the portfolio
(:mod:`lts.notify.audience`). Webhook deliveries run in a process of their own
(:mod:`lts.notify.webhook_outbox` feeds it), chat messages in tasks of their own. Once
a day it sends the daily summary (:mod:`lts.notify.daily_summary`).
"""

import logging
from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import anyio
from anyio.abc import TaskStatus

from lts.bus import Mailbox, Overflow, Subscription
from lts.domain.events import OrderEvent, PortfolioStatusChanged, TradingStateChanged
from lts.engine.facade import EngineFacade
from lts.errors import ConfigError
from lts.notify.audience import Audience
from lts.notify.config import NotifySettings
from lts.notify.daily_summary import next_summary, summaries
from lts.notify.destinations import http_session
from lts.notify.events import Notification, notification_of
from lts.notify.telegram import TelegramBot
from lts.notify.webhook_outbox import WebhookOutbox
from lts.notify.webhook_wire import WebhookRoute
from lts.plugins.base import PluginBase, PluginParams

__all__ = ["EventSource", "Notifier", "NotifyService"]

log = logging.getLogger("lts.notify")

#: the notifier's counters in the engine's metrics (``lts_notify_<name>_total``)
COUNTERS = {
    "notifications": "Notifications made of committed events",
    "events_dropped": "Committed events the notifier dropped: it fell behind (mailbox full)",
    "webhook_delivered": "Webhook notifications delivered (a 2xx answer)",
    "webhook_failed": "Webhook notifications that failed after their last try",
    "webhook_dropped": "Webhook notifications dropped by a full queue",
    "webhook_restarts": "Restarts of the webhook delivery process after it died",
    "delivery_log_written": "Webhook delivery-log rows written",
    "delivery_log_dropped": "Webhook delivery-log rows not written (database away, queue full)",
    "telegram_sent": "Telegram messages sent",
    "telegram_not_sent": "Telegram messages not sent after their tries (refused, or the Bot "
                         "API away)",
}
#: what the notifier listens to (each published once committed)
EVENT_TOPICS: tuple[type, ...] = (OrderEvent, PortfolioStatusChanged, TradingStateChanged)


@runtime_checkable
class EventSource(Protocol):
    """Where committed events come from: the engine's facade, or a bus."""

    def subscribe(self, event_type: type, mailbox: Mailbox[Any],
                  key: Hashable | None = None) -> Subscription: ...


class Notifier:
    def __init__(self, engine: EngineFacade, source: EventSource,
                 settings: NotifySettings | None = None) -> None:
        self.engine = engine
        self.source = source
        self.settings = settings or engine.settings.notify
        s = self.settings
        self.audience = Audience(engine.db, s.webhooks.refresh_seconds,
                                 usernames=s.telegram.chats.values() if s.telegram.enabled
                                 else ())
        self.mailbox: Mailbox[object] = Mailbox(s.mailbox_capacity, Overflow.DROP_OLDEST,
                                                name="notify")
        self.webhooks = WebhookOutbox(
            s.webhooks, engine.db.url.render_as_string(hide_password=False),
            sqlite_synchronous=engine.settings.database.sqlite_synchronous)
        self.telegram: TelegramBot | None = None
        self.notifications = 0

    def counters(self) -> dict[str, int]:
        """What it did since it started (for metrics): notifications made, committed events
        dropped because it fell behind (also in the bus's ``dropped`` as ``notify``), webhook
        deliveries, delivery-log rows, chat messages."""
        hooks = self.webhooks.totals()
        bot = self.telegram
        return {"notifications": self.notifications, "events_dropped": self.mailbox.dropped,
                **{f"webhook_{k}": hooks[k] for k in ("delivered", "failed", "dropped")},
                "webhook_restarts": self.webhooks.restarts,
                "delivery_log_written": hooks["log_written"],
                "delivery_log_dropped": hooks["log_dropped"],
                "telegram_sent": bot.sent if bot is not None else 0,
                "telegram_not_sent": bot.dropped_sends if bot is not None else 0}

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        subs = [self.source.subscribe(topic, self.mailbox) for topic in EVENT_TOPICS]
        self.engine.add_counters("notify", self.counters, COUNTERS)
        try:
            async with http_session(16) as chat_session, anyio.create_task_group() as tg:
                await tg.start(self.webhooks.run)
                if self.settings.telegram.enabled:
                    self.telegram = TelegramBot(self.engine, self.settings.telegram,
                                                self.audience, chat_session)
                    await tg.start(self.telegram.run)
                tg.start_soon(self._daily, name="daily summary")
                task_status.started()
                await self._route()
        finally:
            self.engine.remove_counters("notify")
            for sub in subs:
                sub.cancel()

    async def _route(self) -> None:
        audience, webhooks = self.audience, self.webhooks
        synced: list[WebhookRoute] | None = None
        while True:
            batch = await self.mailbox.get_batch(512)
            pids = {getattr(e, "portfolio_id", None) for e in batch}
            try:
                await audience.refresh(unknown=(p for p in pids if isinstance(p, int)))
            except Exception as exc:  # the database is away: route by what was read before
                log.warning("notify: webhooks and owners not re-read (%s); tried again in "
                            "%.0fs", type(exc).__name__, self.settings.webhooks.refresh_seconds)
            if audience.routes is not synced:  # re-read (here or by the bot's commands)
                synced = audience.routes
                webhooks.sync(synced)
            for event in batch:
                pid = getattr(event, "portfolio_id", 0)
                n = notification_of(event, audience.name(pid))
                if n is not None:
                    self._dispatch(n)

    def _dispatch(self, n: Notification) -> None:
        self.notifications += 1
        self.webhooks.offer(n, self.audience.webhooks_for(n))
        if self.telegram is not None:
            self.telegram.offer(n)

    async def _daily(self) -> None:
        while True:
            end = next_summary(datetime.now(UTC), self.settings.daily_summary_at)
            await anyio.sleep((end - datetime.now(UTC)).total_seconds())
            try:
                await self.send_daily_summary(end)
            except Exception as exc:  # the database is away: this day's summary is lost
                log.warning("notify: daily summary not sent (%s)", type(exc).__name__)

    async def send_daily_summary(self, end: datetime) -> int:
        """Send every portfolio's summary of the 24 hours before ``end`` to those who asked
        for ``daily.summary`` and may see it; returns how many portfolios were summarized."""
        await self.audience.refresh()
        self.webhooks.sync(self.audience.routes)
        made = await summaries(self.engine, end)
        for n in made:
            self._dispatch(n)
        return len(made)


class NotifyService(PluginBase):
    """Core plugin ``notify``: the :class:`Notifier`, run in the engine's task group."""

    Params = PluginParams
    plugin_name = "notify"

    async def serve(self, engine: EngineFacade, *, task_status: TaskStatus[None]) -> None:
        if not isinstance(engine, EventSource):
            raise ConfigError("notify: the engine's facade offers no subscribe(event_type, "
                              "mailbox, key) for committed events")
        await Notifier(engine, engine).run(task_status=task_status)
