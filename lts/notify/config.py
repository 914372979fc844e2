"""The notifications' settings: webhooks (delivery, retries, the log) and the Telegram bot.

Where it sits: the models are sections of the engine's settings (:mod:`lts.settings`, section
``notify``: ``LTS_NOTIFY__TELEGRAM__BOT_TOKEN`` and the like), named here for the notifier.
"""

from lts.domain.events import NOTIFICATION_TYPES
from lts.settings import NotifySettings, TelegramSettings, WebhookSettings

__all__ = ["EVENT_TYPES", "NotifySettings", "TelegramSettings", "WebhookSettings"]

EVENT_TYPES = NOTIFICATION_TYPES
