"""The grid of a parameter sweep: ``--grid NAME=SPEC`` parsed, expanded and screened.

Where it sits: first step of a sweep (:mod:`lts.backtest.sweep`). :func:`parse_grid` reads the
specs, :func:`screen` expands their product and asks the strategy's own params which
combinations it takes; the refused ones are counted by reason and never run.

A spec is a range ``START:STOP:STEP`` (STOP included when it falls on a step; STEP above zero)
or a comma list ``A,B,C`` (a single value is a list of one). Values keep their type: ``5:50:5``
gives ints, ``0.1:0.5:0.1`` exact decimals (0.1, 0.2, ... 0.5, never 0.30000000000000004),
``true,false`` booleans, anything else text. Every problem with a spec is one
:class:`~lts.errors.ConfigError` line naming it.
"""

import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from itertools import product
from typing import Any

from lts.errors import ConfigError, InvalidParams

__all__ = ["MAX_COMBINATIONS", "Grid", "GridValue", "Screened", "format_value", "parse_grid",
           "parse_values", "plain_params", "screen"]

#: More than this many combinations is refused before anything runs (a typo such as
#: ``1:100000:1`` would otherwise start a sweep of days).
MAX_COMBINATIONS = 1_000_000

GridValue = int | Decimal | bool | str

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INT = re.compile(r"[+-]?\d+\Z")


@dataclass(frozen=True)
class Grid:
    """The swept params in the order given, each with its values in order."""

    axes: dict[str, list[GridValue]]

    @property
    def names(self) -> list[str]:
        return list(self.axes)

    @property
    def size(self) -> int:
        n = 1
        for values in self.axes.values():
            n *= len(values)
        return n

    def combinations(self) -> Iterator[dict[str, GridValue]]:
        """Every combination, the last param varying fastest."""
        names = self.names
        for values in product(*self.axes.values()):
            yield dict(zip(names, values, strict=True))


@dataclass
class Screened:
    """The combinations a strategy takes, and how many it refused, by reason."""

    valid: list[dict[str, GridValue]]
    refused: Counter[str] = field(default_factory=Counter)

    @property
    def refused_count(self) -> int:
        return sum(self.refused.values())


def parse_grid(specs: Sequence[str]) -> Grid:
    """``["fast=5:50:5", "long_only=true,false"]`` -> a :class:`Grid`."""
    if not specs:
        raise ConfigError("a sweep needs at least one --grid NAME=SPEC")
    axes: dict[str, list[GridValue]] = {}
    for spec in specs:
        name, sep, text = spec.partition("=")
        name = name.strip()
        if not sep or not _NAME.match(name):
            raise ConfigError(f"--grid {spec!r}: expected NAME=START:STOP:STEP or NAME=A,B,C")
        if name in axes:
            raise ConfigError(f"--grid {name}: given twice")
        axes[name] = parse_values(name, text.strip())
    grid = Grid(axes)
    if grid.size > MAX_COMBINATIONS:
        raise ConfigError(f"the grid has {grid.size:,} combinations, more than "
                          f"{MAX_COMBINATIONS:,}")
    return grid


def parse_values(name: str, text: str) -> list[GridValue]:
    """One spec's values (see the module docstring)."""
    where = f"--grid {name}={text}"
    if not text:
        raise ConfigError(f"{where}: no values")
    if ":" in text:
        values = _range(where, text)
    else:
        values = [_item(where, item.strip()) for item in text.split(",")]
    seen: set[tuple[type, GridValue]] = set()
    for value in values:
        key = (type(value), value)
        if key in seen:
            raise ConfigError(f"{where}: {format_value(value)} twice")
        seen.add(key)
    return values


def _range(where: str, text: str) -> list[GridValue]:
    parts = [p.strip() for p in text.split(":")]
    if len(parts) != 3 or not all(parts):
        raise ConfigError(f"{where}: a range is START:STOP:STEP")
    numbers = [_number(where, p) for p in parts]
    start, stop, step = numbers
    if step <= 0:
        raise ConfigError(f"{where}: the step must be above zero")
    if stop < start:
        raise ConfigError(f"{where}: STOP is below START")
    count = int((stop - start) // step) + 1
    if count > MAX_COMBINATIONS:
        raise ConfigError(f"{where}: {count:,} values, more than {MAX_COMBINATIONS:,}")
    if all(_INT.match(p) for p in parts):
        return [int(start + i * step) for i in range(count)]
    return [start + i * step for i in range(count)]


def _number(where: str, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ConfigError(f"{where}: {text!r} is not a number") from None
    if not value.is_finite():
        raise ConfigError(f"{where}: {text!r} is not a finite number")
    return value


def _item(where: str, text: str) -> GridValue:
    if not text:
        raise ConfigError(f"{where}: an empty value in the list")
    if _INT.match(text):
        return int(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text
    return value if value.is_finite() else text


def format_value(value: object) -> str:
    """A grid value as the user wrote it (``true``, ``5``, ``0.25``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def plain_params(combination: Mapping[str, GridValue]) -> dict[str, Any]:
    """A combination as strategy params (decimals as text: params are stored as JSON and the
    strategy's typed params read the text exactly)."""
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in combination.items()}


def screen(grid: Grid, *, strategy: str, known: Sequence[str], fixed: Mapping[str, Any],
           validate: Callable[[dict[str, Any]], object]) -> Screened:
    """Expand ``grid`` and keep the combinations ``validate(params)`` accepts (it raises
    :class:`~lts.errors.InvalidParams` for the others). ``known`` are the strategy's param
    names, ``fixed`` the params every combination shares (``--param``, ``--quantity``)."""
    for name in grid.names:
        if name not in known:
            raise ConfigError(f"--grid {name}: {strategy} has no param {name!r} (its params: "
                              f"{', '.join(known) or 'none'})")
        if name in fixed:
            raise ConfigError(f"--grid {name}: also given as a fixed param (--param or "
                              "--quantity); sweep it or fix it, not both")
    screened = Screened(valid=[])
    for combination in grid.combinations():
        try:
            validate({**fixed, **plain_params(combination)})
        except InvalidParams as exc:
            screened.refused[str(exc)] += 1
            continue
        screened.valid.append(combination)
    if not screened.valid:
        reasons = "; ".join(f"{reason} ({n})" for reason, n in screened.refused.most_common(3))
        raise ConfigError(f"no combination of the grid is valid: {reasons}")
    return screened
