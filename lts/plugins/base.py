"""The contract every plugin keeps (seed §4.1), with typed, validated params.

A plugin declares ``class Params(PluginParams)``: a pydantic model whose unknown keys are refused.
From it the base derives the seed's ``plugin_params`` (the defaults); ``plugin_debug_vars`` names
the attributes :meth:`PluginBase.get_debug_info` reports. Plugins never see the engine's internals:
they exchange domain values through their kind's protocol.
"""

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from lts.errors import InvalidParams


class PluginParams(BaseModel):
    """Base of every plugin's params: frozen, unknown keys refused, types enforced, numbers
    finite (``NaN``, ``Infinity`` and ``1e400`` refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def first_error(plugin: str, exc: ValidationError) -> InvalidParams:
    """One clear error naming the first offending field."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or "params"
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        msg = "unknown param"
    return InvalidParams(plugin, field, msg)


class PluginBase:
    """Seed contract: ``plugin_params``, ``plugin_debug_vars``, ``set_params``,
    ``get_debug_info``, ``add_debug_info``."""

    Params: ClassVar[type[PluginParams]] = PluginParams
    plugin_params: ClassVar[dict[str, Any]] = {}
    plugin_debug_vars: ClassVar[list[str]] = []
    plugin_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.plugin_params = {
            name: f.get_default(call_default_factory=True)
            for name, f in cls.Params.model_fields.items()
        }
        if not cls.plugin_name:
            cls.plugin_name = cls.__name__

    def __init__(self, **params: Any) -> None:
        self.params = self.validate_params(params)
        self._debug_extra: dict[str, Any] = {}

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> Any:
        try:
            return cls.Params.model_validate(params)
        except ValidationError as exc:
            raise first_error(cls.plugin_name, exc) from None

    @classmethod
    def params_schema(cls) -> dict[str, Any]:
        return cls.Params.model_json_schema()

    def set_params(self, **params: Any) -> None:
        """Change some params; the merged set is validated before anything changes."""
        merged = {**self.params.model_dump(), **params}
        self.params = self.validate_params(merged)
        self.params_changed()

    def params_changed(self) -> None:
        """Called after :meth:`set_params`; plugins that cache params refresh them here."""

    def get_debug_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"plugin": self.plugin_name, "params": self.params.model_dump()}
        for var in self.plugin_debug_vars:
            info[var] = getattr(self, var, None)
        info.update(self._debug_extra)
        return info

    def add_debug_info(self, debug_info: dict[str, Any]) -> None:
        """Merge entries into what :meth:`get_debug_info` reports (seed §4.1)."""
        self._debug_extra.update(debug_info)
