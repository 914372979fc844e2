"""Notifications and commands: webhooks and the Telegram bot, a core service of the engine.

Committed engine events (fills, rejected and denied orders, portfolio errors and restarts,
kill-switch changes) become notifications (:mod:`lts.notify.events`), routed to each user's
webhooks and configured chats when that user may see the portfolio (:mod:`lts.notify.audience`),
delivered signed and retried (:mod:`lts.notify.webhooks`) or as chat messages, beside the
bot's commands (:mod:`lts.notify.telegram`). The service: :mod:`lts.notify.service`.
"""

from lts.notify.service import Notifier, NotifyService

__all__ = ["Notifier", "NotifyService"]
