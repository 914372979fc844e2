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
    └── ReconciliationError    a portfolio's orders could not be reconciled with its broker
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
