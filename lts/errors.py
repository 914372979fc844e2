"""The one error root of LTS. Adapters translate vendor errors into this tree; the CLI maps it
to one line and exit status 2, the API to a 4xx with a stable code.

::

    LtsError
    ├── ConfigError            settings, TOML, --set values
    ├── DataError              market data files: missing, malformed, unsorted
    ├── PluginError
    │   ├── PluginNotFound     no plugin of that kind and name
    │   ├── PluginLoadError    the plugin's module failed to import
    │   └── InvalidParams      a param is unknown or has a bad value (carries the field)
    ├── Conflict               a unique name is taken, or a state forbids the change
    ├── SchemaError            the database schema is not the one the code needs
    ├── BackupError            a backup file is unreadable, corrupt or truncated; a restore
    │                          target is not empty
    ├── CredentialError        a stored broker credential does not decrypt (altered, moved to
    │                          another user or broker, or its key version is not configured)
    ├── ReconciliationError    a portfolio's orders could not be reconciled with its broker
    ├── BrokerError            what a venue adapter raises (adapters translate their SDK's errors)
    │   ├── VenueRejected      the venue said no: the order (or cancel, or change) is refused,
    │   │                      with the venue's reason
    │   ├── VenueAnswerLost    sent, but no answer (timeout, connection dropped mid-request): the
    │   │                      outcome is UNKNOWN until a query settles it; never resubmitted
    │   └── VenueUnavailable   nothing was sent (not connected, refused before sending)
    ├── LeaseLost              another engine took a portfolio this engine was trading
    ├── LeaseHeld              the database or a portfolio is in use by another engine
    └── Unavailable            not now, try again later (the API answers 503 with Retry-After)
        ├── JournalUnavailable the journal cannot write (database down, disk full)
        ├── PortfolioBusy      a portfolio's inbox is full of commands
        └── AnswerTimeout      a portfolio did not answer a command in time
"""


class LtsError(Exception):
    """Root of every error LTS raises on purpose; its message is safe to show a user."""


class ConfigError(LtsError):
    pass


class DataError(LtsError):
    pass


class PluginError(LtsError):
    pass


class PluginNotFound(PluginError):
    pass


class PluginLoadError(PluginError):
    pass


class InvalidParams(PluginError):
    def __init__(self, plugin: str, field: str, message: str) -> None:
        # field "params": a rule across several params (fast < slow)
        where = "params" if field == "params" else f"param {field!r}"
        super().__init__(f"{plugin}: {where}: {message}")
        self.plugin = plugin
        self.field = field


class Conflict(LtsError):
    pass


class SchemaError(LtsError):
    pass


class BackupError(LtsError):
    pass


class ReconciliationError(LtsError):
    pass


class CredentialError(LtsError):
    pass


class BrokerError(LtsError):
    pass


class VenueRejected(BrokerError):
    """The venue refused; ``reason`` is its reason, safe to store and show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class VenueAnswerLost(BrokerError):
    pass


class VenueUnavailable(BrokerError):
    pass


class LeaseLost(LtsError):
    pass


class LeaseHeld(LtsError):
    pass


class Unavailable(LtsError):
    """Temporarily unable; ``retry_after`` seconds is a fair wait before trying again."""

    retry_after = 1

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        if retry_after is not None:
            self.retry_after = retry_after


class JournalUnavailable(Unavailable):
    retry_after = 2


class PortfolioBusy(Unavailable):
    pass


class AnswerTimeout(Unavailable):
    pass
