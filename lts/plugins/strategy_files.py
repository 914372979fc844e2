"""A strategy from a file of your own: ``replay ... --strategy path/to/my_strategy.py:MyStrategy``.

Where it sits: before a backtest or a sweep starts, the command line loads the file and
registers its class in the registry as a strategy named by the same ``path:Class`` text, so the
engine makes it like any other plugin. No packaging needed; to run it live, give it an entry
point (``docs/strategies.md``). Every problem with the file is one :class:`PluginLoadError` line:
the file missing, a syntax error (with its line), an import failing inside it, no such class, a
class that is not a strategy, or one without ``on_bar``.
"""

import hashlib
import importlib.util
import sys
import traceback
from pathlib import Path

from lts.errors import PluginLoadError
from lts.plugins.base import PluginBase
from lts.plugins.registry import Registry

__all__ = ["is_strategy_file", "load_strategy_file"]


def is_strategy_file(name: str) -> bool:
    """Whether a ``--strategy`` value names a file (``something.py:Class``)."""
    path, sep, cls = name.rpartition(":")
    return bool(sep and cls and path.endswith(".py"))


def load_strategy_file(registry: Registry, name: str) -> str:
    """Load ``path.py:Class`` and register it as the strategy ``name``; returns ``name``."""
    path_text, _, class_name = name.rpartition(":")
    path = Path(path_text)
    where = f"strategy file {path_text}"
    if not path.is_file():
        raise PluginLoadError(f"{where}: no such file")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"lts_user_strategy_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginLoadError(f"{where}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(module_name, None)
        raise PluginLoadError(f"{where}, line {exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:
        sys.modules.pop(module_name, None)
        line = _line_in(exc, path)
        raise PluginLoadError(f"{where}{line}: {type(exc).__name__}: {exc}"[:300]) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise PluginLoadError(f"{where}: no class {class_name!r} in it")
    if not (isinstance(cls, type) and issubclass(cls, PluginBase)):
        raise PluginLoadError(f"{where}: {class_name} is not a strategy (subclass "
                              "lts.plugins.strategy.base.TradingStrategy)")
    if not callable(getattr(cls, "on_bar", None)):
        raise PluginLoadError(f"{where}: {class_name} has no on_bar(self, bar) method")
    if ("strategy", name) not in registry.plugins:
        registry.register("strategy", name, cls)
    return name


def _line_in(exc: BaseException, path: Path) -> str:
    """``, line N`` of the innermost frame in the user's file, if any."""
    resolved = str(path.resolve())
    line = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve().as_posix() == Path(resolved).as_posix():
            line = f", line {frame.lineno}"
    return line
