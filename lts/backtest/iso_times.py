"""ISO 8601 times (UTC, with their zone) for a million timestamps at once.

Flow: the backtest report writes every bar's time into ``equity.csv`` and every fill's and
trade's time into the other CSVs; they all go through :func:`iso_utc_column` (an Arrow string
column for the CSV writer) or :func:`iso_utc`. numpy's ``datetime_as_string(...,
timezone="UTC")`` takes over a second for a million values, Arrow's ``strftime`` as long; this
builds the characters arithmetically in one byte buffer that becomes the Arrow column as it is.

Format: ``2024-03-01T09:30:00Z``, with a fraction of 3, 6 or 9 digits when some time of the
column needs it (every time of a column has the same width).
"""

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["iso_utc", "iso_utc_column"]

_ZERO = ord("0")


def iso_utc(ts_ns: npt.ArrayLike) -> list[str]:
    """``YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z`` for each ns since the epoch."""
    chars = _characters(np.asarray(ts_ns, dtype=np.int64), newline=True)
    return chars.tobytes().decode("ascii").split("\n")[:-1] if len(chars) else []


def iso_utc_column(ts_ns: npt.ArrayLike) -> Any:
    """The same as an Arrow string column (a ``pyarrow.StringArray``), built without copying
    the characters."""
    chars = _characters(np.asarray(ts_ns, dtype=np.int64), newline=False)
    count, width = chars.shape
    offsets = np.arange(0, count * width + 1, width, dtype=np.int64)
    return pa.Array.from_buffers(pa.large_string(), count, [
        None, pa.py_buffer(offsets), pa.py_buffer(chars)])


def _characters(ts: npt.NDArray[np.int64], newline: bool) -> npt.NDArray[np.uint8]:
    """One row of characters per time (C order), each ending with a newline if asked."""
    if not len(ts):
        return np.empty((0, 20 + newline), dtype=np.uint8)
    fraction = ts % 1_000_000_000
    digits = next(d for d in (0, 3, 6, 9) if not np.any(fraction % 10 ** (9 - d)))
    seconds = ts // 1_000_000_000
    day = seconds.astype("datetime64[s]").astype("datetime64[D]")
    month = day.astype("datetime64[M]")
    year = month.astype("datetime64[Y]").astype(np.int64) + 1970
    if bool(np.any((year < 0) | (year > 9999))):
        raise ValueError("only years 0 to 9999 are written")
    month_of_year = month.astype(np.intp) % 12 + 1
    day_of_month = (day - month.astype("datetime64[D]")).astype(np.intp) + 1
    second_of_day = (seconds % 86_400).astype(np.intp)
    width = 20 + newline + (digits + 1 if digits else 0)
    # one row per character (each written contiguously), transposed once at the end
    chars = np.empty((width, len(ts)), dtype=np.uint8)
    _two(chars, 0, year.astype(np.intp) // 100)
    _two(chars, 2, year.astype(np.intp) % 100)
    _two(chars, 5, month_of_year)
    _two(chars, 8, day_of_month)
    _two(chars, 11, second_of_day // 3600)
    _two(chars, 14, second_of_day // 60 % 60)
    _two(chars, 17, second_of_day % 60)
    chars[[4, 7]] = ord("-")
    chars[10] = ord("T")
    chars[[13, 16]] = ord(":")
    if digits:
        chars[19] = ord(".")
        part = (fraction // 10 ** (9 - digits)).astype(np.intp)
        for at in range(20 + digits - 1, 19, -1):
            chars[at] = part % 10 + _ZERO
            part //= 10
    chars[19 + (digits + 1 if digits else 0)] = ord("Z")
    if newline:
        chars[-1] = ord("\n")
    return np.ascontiguousarray(chars.T)


_TENS = (np.arange(100) // 10 + _ZERO).astype(np.uint8)
_ONES = (np.arange(100) % 10 + _ZERO).astype(np.uint8)


def _two(chars: npt.NDArray[np.uint8], at: int, values: npt.NDArray[np.intp]) -> None:
    chars[at] = _TENS[values]
    chars[at + 1] = _ONES[values]
