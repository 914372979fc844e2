"""The notifications' settings: webhooks (delivery, retries, the log) and the Telegram bot.

Where it sits: read by :mod:`lts.notify.service` from the engine's settings (section
``notify``: ``LTS_NOTIFY__TELEGRAM__BOT_TOKEN`` and the like). The models follow the settings
tree's rules: unknown keys refused, numbers finite.
"""

from datetime import time

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from lts.domain.events import NOTIFICATION_TYPES

__all__ = ["NotifySettings", "TelegramSettings", "WebhookSettings"]

EVENT_TYPES = NOTIFICATION_TYPES


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class WebhookSettings(_Section):
    max_attempts: int = Field(6, ge=1, le=20, description="tries per notification")
    initial_backoff: float = Field(1.0, gt=0, le=3600,
                                   description="seconds before the 2nd try, doubled per try")
    max_backoff: float = Field(300.0, gt=0, le=86_400)
    timeout: float = Field(10.0, gt=0, le=120, description="seconds per try")
    concurrency: int = Field(4, ge=1, le=64, description="deliveries in flight per webhook")
    queue: int = Field(1000, ge=1, le=1_000_000,
                       description="notifications waiting per webhook (the oldest dropped)")
    refresh_seconds: float = Field(2.0, gt=0, le=3600,
                                   description="webhooks and owners re-read at most this often")
    log_keep: int = Field(1000, ge=10, le=1_000_000, description="attempts kept per webhook")
    max_per_user: int = Field(20, ge=1, le=1000)
    allow_private_networks: bool = Field(
        False, description="let webhooks post to loopback, private and link-local addresses")


class TelegramSettings(_Section):
    enabled: bool = False
    bot_token: SecretStr | None = None
    api_base_url: str = Field("https://api.telegram.org", pattern=r"^https?://[^\s/]+(/\S*)?$")
    #: chat id -> the LTS user it acts as (their role decides what the chat may do)
    chats: dict[int, str] = Field(default_factory=dict)
    events: tuple[str, ...] = EVENT_TYPES
    poll_timeout: int = Field(30, ge=0, le=50, description="getUpdates long-poll, seconds")
    queue: int = Field(200, ge=1, le=100_000, description="messages waiting per chat")

    @field_validator("events")
    @classmethod
    def _known(cls, events: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(events) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event type(s) {', '.join(unknown)}; known: "
                             f"{', '.join(EVENT_TYPES)}")
        return events

    @model_validator(mode="after")
    def _token_when_enabled(self) -> "TelegramSettings":
        if self.enabled and self.bot_token is None:
            raise ValueError("enabled needs bot_token (LTS_NOTIFY__TELEGRAM__BOT_TOKEN)")
        return self


class NotifySettings(_Section):
    enabled: bool = True
    mailbox_capacity: int = Field(10_000, ge=1, le=10_000_000,
                                  description="committed events waiting (the oldest dropped)")
    daily_summary_at: time = Field(time(0, 0), description="UTC time of day the daily "
                                   "summary is sent (it covers the 24 hours before)")
    webhooks: WebhookSettings = WebhookSettings()
    telegram: TelegramSettings = TelegramSettings()
