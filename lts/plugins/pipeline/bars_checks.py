"""Checking raw bars and turning them into numbers: the second step of reading historical data.

:class:`BarChecker` takes a file's :class:`~lts.plugins.pipeline.bars_source.RawChunk` s in
order and gives each back as numpy arrays (times in ns, prices and volumes as floats), or raises
the one :class:`~lts.errors.DataError` that names the earliest bad row of the chunk: an empty,
non-numeric, NaN, infinite or non-positive price; a negative volume; a high below the low, the
open or the close, a low above the open or the close; a time that does not parse, lies beyond
int64 nanoseconds (1677-09-21 to 2262-04-11) or changes unit; a time not after the previous one
(of the same symbol, in a long-format file whose rows are sorted by time). State carried from
chunk to chunk: the timestamps' format and unit, and the last time of each symbol.
"""

import math
from datetime import datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from lts.plugins.pipeline.arrow_numpy import numbers_of
from lts.plugins.pipeline.bars_source import COLUMNS, BarsSource, RawChunk

__all__ = ["BarChecker", "CheckedChunk"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

_INT64_MAX = 2**63 - 1
#: epoch values below the limit are in that many ns per unit (seconds up to year 5138, ...)
_UNIT_LIMITS = ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3))
#: the magnitudes of each unit's values: a file keeps the unit of its first row
_UNIT_RANGES = {10**9: (0.0, 1e11), 10**6: (1e11, 1e14), 10**3: (1e14, 1e17),
                1: (1e17, math.inf)}
_UNIT_NAMES = {10**9: "seconds", 10**6: "milliseconds", 10**3: "microseconds", 1: "nanoseconds"}
_BEYOND = " is beyond the int64 nanosecond range (1677-09-21 to 2262-04-11)"
_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


class CheckedChunk(NamedTuple):
    """A chunk whose every row passed: ``ts`` in ns; ``values`` open, high, low, close,
    volume; ``codes`` index ``symbols`` per row (long format) or are None."""

    raw: RawChunk
    ts: Ints
    values: tuple[Floats, ...]
    symbols: list[str] | None
    codes: npt.NDArray[np.intp] | None


class _Problems:
    """The earliest problem of a chunk (on a tie, the one found first)."""

    def __init__(self) -> None:
        self.first: tuple[int, str, str] | None = None

    def add(self, row: int, what: str, tail: str = "") -> None:
        if self.first is None or row < self.first[0]:
            self.first = (row, what, tail)


class BarChecker:
    """Checks one file's chunks in order; see the module docstring for what it refuses."""

    def __init__(self, source: BarsSource) -> None:
        self._source = source
        self._ts_what = f"timestamp column {source.ts_name!r}"
        self._zoned: bool | None = None   # text times: None = epoch numbers
        self._text_kind_known = False
        self._scale: int | None = None    # ns per epoch unit, fixed by the first row
        self._last: int | None = None     # last time of the file (long format: of any symbol)
        self._last_of: dict[str, int] = {}

    def check(self, raw: RawChunk) -> CheckedChunk:
        if not len(raw.ts):
            empty = np.zeros(0)
            long = raw.symbols is not None
            return CheckedChunk(raw, np.zeros(0, np.int64), (empty,) * len(COLUMNS),
                                [] if long else None, np.zeros(0, np.intp) if long else None)
        problems = _Problems()
        ts = self._timestamps(raw.ts, problems)
        values = tuple(self._floats(name, col, problems)
                       for name, col in zip(COLUMNS, raw.values, strict=True))
        self._bar_shape(raw, values, problems)
        symbols, codes = self._symbols(raw.symbols, problems)
        if symbols is None or codes is None:
            self._in_order(ts, problems)
        else:
            self._in_order_by_symbol(ts, symbols, codes, problems)
        if problems.first is not None:
            row, what, tail = problems.first
            raise self._source.error(raw, row, what, tail)
        return CheckedChunk(raw, ts, values, symbols, codes)

    # -- prices and volumes -----------------------------------------------------------------------

    def _floats(self, name: str, col: pa.Array, problems: _Problems) -> Floats:
        what = f"column {name!r}"
        if col.null_count:
            problems.add(_first(col.is_null()), f"{what}: empty value")
        try:
            numbers = pc.cast(col, pa.float64())
        except _CAST_ERRORS:
            row = _first_failing(col, pa.float64())
            problems.add(row, f"{what}: non-numeric value {col[row].as_py()!r}")
            return np.full(len(col), np.nan)  # NaN: no bar shape rule fires on it
        x: Floats = numbers_of(pc.fill_null(numbers, np.nan) if numbers.null_count
                               else numbers)
        for mask, why in ((np.isnan(x), "NaN"), (np.isinf(x), "infinite value")):
            if mask.any():
                problems.add(int(np.argmax(mask)), f"{what}: {why}")
        if name == "volume":
            negative = x < 0
            if negative.any():
                row = int(np.argmax(negative))
                problems.add(row, f"{what}: negative volume {_shown(col[row].as_py())}")
        else:
            not_positive = x <= 0
            if not_positive.any():
                problems.add(int(np.argmax(not_positive)), f"{what}: price <= 0")
        return x

    def _bar_shape(self, raw: RawChunk, values: tuple[Floats, ...], problems: _Problems) -> None:
        o, h, lo, c, _ = values
        rules = ((h < lo, 1, "below", 2), (h < o, 1, "below", 0), (h < c, 1, "below", 3),
                 (lo > o, 2, "above", 0), (lo > c, 2, "above", 3))
        bad = np.logical_or.reduce([mask for mask, *_ in rules])
        if not bad.any():
            return
        row = int(np.argmax(bad))
        for mask, left, relation, right in rules:
            if mask[row]:
                problems.add(row, f"{COLUMNS[left]} {_shown(raw.values[left][row].as_py())} "
                                  f"{relation} {COLUMNS[right]} "
                                  f"{_shown(raw.values[right][row].as_py())}")
                return

    # -- times ------------------------------------------------------------------------------------

    def _timestamps(self, col: pa.Array, problems: _Problems) -> Ints:
        if col.null_count:
            problems.add(_first(col.is_null()), f"{self._ts_what}: empty value")
        kind = col.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return self._parsed(col, problems)
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            return self._instants(col, problems)
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            return self._epochs(col, col, problems)
        problems.add(0, f"{self._ts_what}: values of type {kind} are not times")
        return np.zeros(len(col), np.int64)

    def _parsed(self, text: pa.Array, problems: _Problems) -> Ints:
        if not self._text_kind_known:
            self._text_kind_known = True
            self._zoned = _zone_of(next((t for t in text.to_pylist() if t), ""))
        if self._zoned is None:
            try:
                numbers = pc.cast(text, pa.int64())
            except _CAST_ERRORS:
                try:
                    numbers = pc.cast(text, pa.float64())
                except _CAST_ERRORS:
                    row = _first_failing(text, pa.float64())
                    problems.add(row, f"{self._ts_what}: cannot parse {text[row].as_py()!r}")
                    return np.zeros(len(text), np.int64)
            return self._epochs(numbers, text, problems)
        target = pa.timestamp("ns", tz="UTC" if self._zoned else None)
        try:
            instants = pc.cast(text, target)
        except _CAST_ERRORS:
            row = _first_failing(text, target)
            value = text[row].as_py()
            if _is_iso(value):  # a real date, outside what int64 nanoseconds hold
                problems.add(row, f"{self._ts_what}: {value!r}", _BEYOND)
            else:
                problems.add(row, f"{self._ts_what}: cannot parse {value!r}")
            return np.zeros(len(text), np.int64)
        return _ns(instants)

    def _instants(self, col: pa.Array, problems: _Problems) -> Ints:
        zone = getattr(col.type, "tz", None)
        target = pa.timestamp("ns", tz=zone)
        try:
            instants = pc.cast(col, target)
        except _CAST_ERRORS:
            row = _first_failing(col, target)
            problems.add(row, f"{self._ts_what}: {col[row].as_py()!r}", _BEYOND)
            return np.zeros(len(col), np.int64)
        return _ns(instants)

    def _epochs(self, numbers: pa.Array, shown: pa.Array, problems: _Problems) -> Ints:
        """Epoch numbers in the unit their size says (the first row's for the file) -> ns."""
        exact = pa.types.is_integer(numbers.type)
        cast = pc.cast(numbers, pa.int64() if exact else pa.float64(), safe=False)
        x = numbers_of(pc.fill_null(cast, 0) if cast.null_count else cast)
        if not exact:
            finite = np.isfinite(x)
            if not finite.all():
                row = int(np.argmin(finite))
                problems.add(row, f"{self._ts_what}: {shown[row].as_py()!r} is not a time")
                x = np.where(finite, x, 0.0)
        elif pa.types.is_unsigned_integer(numbers.type):
            big = pc.greater(numbers, _INT64_MAX)
            if pc.any(big).as_py():
                row = _first(big)
                problems.add(row, f"{self._ts_what}: {shown[row].as_py()!r}", _BEYOND)
        if self._scale is None:
            sane = x[np.abs(x) < 2.0**63]
            if len(sane):
                self._scale = _scale_of(float(sane[0]))
        scale = self._scale or 1
        magnitude = np.abs(x)
        low, high = _UNIT_RANGES[scale]
        huge = magnitude >= 2.0**63  # beyond int64 in any unit
        other_unit = ~huge & ((magnitude < low) | (magnitude >= high))
        if other_unit.any():
            row = int(np.argmax(other_unit))
            problems.add(row, f"{self._ts_what}: {shown[row].as_py()!r} is not in epoch "
                              f"{_UNIT_NAMES[scale]} like the first row")
        bound = _INT64_MAX // scale
        beyond = huge | (magnitude > bound if exact else magnitude >= bound)
        if beyond.any():
            row = int(np.argmax(beyond))
            problems.add(row, f"{self._ts_what}: {shown[row].as_py()!r}", _BEYOND)
        if beyond.any() or other_unit.any():  # reported: zero, so that nothing overflows
            x = np.where(beyond | other_unit, 0, x)
        ns: Ints = (x.astype(np.int64) * scale if exact
                    else np.round(x * scale).astype(np.int64))
        return ns

    # -- order ------------------------------------------------------------------------------------

    def _in_order(self, ts: Ints, problems: _Problems) -> None:
        if not len(ts):
            return
        if self._last is None:
            steps, offset = np.diff(ts), 1
        else:
            steps, offset = np.diff(ts, prepend=self._last), 0
        bad = steps <= 0
        if bad.any():
            i = int(np.argmax(bad))
            what = "duplicate" if steps[i] == 0 else "unsorted"
            problems.add(i + offset, f"{self._ts_what}: {what} timestamp")
        self._last = int(ts[-1])

    def _symbols(self, col: pa.Array | None, problems: _Problems
                 ) -> tuple[list[str] | None, npt.NDArray[np.intp] | None]:
        if col is None:
            return None, None
        if col.null_count:
            problems.add(_first(col.is_null()), "column 'symbol': empty value")
            col = pc.fill_null(col, "")
        encoded = pc.dictionary_encode(pc.cast(col, pa.string()))
        codes: npt.NDArray[np.intp] = numbers_of(encoded.indices).astype(np.intp)
        return [str(s) for s in encoded.dictionary.to_pylist()], codes

    def _in_order_by_symbol(self, ts: Ints, symbols: list[str],
                            codes: npt.NDArray[np.intp], problems: _Problems) -> None:
        """Rows sorted by time overall; each symbol's strictly increasing."""
        self._in_order_overall(ts, problems)
        for code, symbol in enumerate(symbols):
            rows = np.flatnonzero(codes == code)
            if not len(rows):
                continue
            times = ts[rows]
            last = self._last_of.get(symbol)
            if last is None:
                steps, offset = np.diff(times), 1
            else:
                steps, offset = np.diff(times, prepend=last), 0
            bad = steps <= 0
            if bad.any():
                i = int(np.argmax(bad))
                what = "duplicate" if steps[i] == 0 else "unsorted"
                problems.add(int(rows[i + offset]),
                             f"{self._ts_what}: {what} timestamp of {symbol}")
            self._last_of[symbol] = int(times[-1])

    def _in_order_overall(self, ts: Ints, problems: _Problems) -> None:
        if not len(ts):
            return
        steps = np.diff(ts, prepend=ts[0] if self._last is None else self._last)
        back = steps < 0
        if back.any():
            problems.add(int(np.argmax(back)),
                         f"{self._ts_what}: unsorted timestamp (the rows of all symbols "
                         "must be in time order)")
        self._last = int(ts[-1])


def _scale_of(epoch: float) -> int:
    """ns per unit of an epoch time, from its size."""
    return next((scale for limit, scale in _UNIT_LIMITS if abs(epoch) < limit), 1)


def _first(mask: pa.Array) -> int:
    """Index of the first true value of a boolean array."""
    return int(pc.index(mask, True).as_py())


def _first_failing(col: pa.Array, target: pa.DataType) -> int:
    """Index of the first value that does not cast (the whole array did not): bisection, so a
    bad row costs a few dozen casts, never one per row."""
    lo, n = 0, len(col)
    while n > 1:
        half = n // 2
        try:
            pc.cast(col.slice(lo, half), target)
        except _CAST_ERRORS:
            n = half
            continue
        lo, n = lo + half, n - half
    return lo


def _ns(instants: pa.Array) -> Ints:
    ns = pc.cast(instants, pa.int64())
    if ns.null_count:  # rows already reported: any value will do (a fill value's scalar
        ns = pc.fill_null(ns, 0)  # imports pandas: kept off the common path)
    out: Ints = numbers_of(ns)
    return out


def _shown(value: object) -> str:
    """A value as the file wrote it (text) or as Python writes it (a typed column)."""
    return value if isinstance(value, str) else repr(value)


def _zone_of(text: str) -> bool | None:
    """How a file writes its times, from its first: None for epoch numbers, else whether the
    text carries a zone (``Z``, ``+01:00``). Python reads the ISO forms first: building a
    pyarrow array from Python values imports pandas (0.3 s of a backtest's start-up)."""
    try:
        float(text)
    except ValueError:
        pass
    else:
        return None
    if _is_iso(text):
        try:
            return datetime.fromisoformat(text).tzinfo is not None
        except ValueError:
            pass
    try:
        pc.cast(pa.array([text]), pa.timestamp("ns"))
    except _CAST_ERRORS:
        try:
            pc.cast(pa.array([text]), pa.timestamp("ns", tz="UTC"))
        except _CAST_ERRORS:
            return _is_iso(text) and datetime.fromisoformat(text).tzinfo is not None
        return True
    return False


def _is_iso(text: object) -> bool:
    if not isinstance(text, str):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
