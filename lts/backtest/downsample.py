"""Fewer points for the report's chart, keeping its shape: a million bars become a few thousand.

Flow: :mod:`lts.backtest.report_html` charts the prices, the equity and the drawdown through
these; the CSV files keep every bar. Prices become coarser candles (``k`` bars merged: the first
open, the highest high, the lowest low, the last close), so no extreme is lost. A line (equity,
drawdown) keeps, in each bucket of ``k`` samples, its lowest and its highest sample (in time
order), plus the first and the last sample: every peak and every trough stays on the chart.
"""

import math

import numpy as np
import numpy.typing as npt

__all__ = ["Candles", "bucket_size", "candles", "envelope", "envelope_bucket"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Candles = tuple[IntArray, FloatArray, FloatArray, FloatArray, FloatArray]


def bucket_size(count: int, buckets: int) -> int:
    """How many samples make one bucket so that ``count`` fit in ``buckets`` (at least 1)."""
    return max(1, math.ceil(count / max(1, buckets)))


def candles(ts: IntArray, open_: FloatArray, high: FloatArray, low: FloatArray,
            close: FloatArray, max_candles: int) -> tuple[Candles, int]:
    """At most ``max_candles`` candles of ``k`` bars each (stamped at their first bar), and
    ``k``."""
    k = bucket_size(len(ts), max_candles)
    if k == 1 or not len(ts):
        return (ts, open_, high, low, close), 1
    starts = np.arange(0, len(ts), k)
    ends = np.minimum(starts + k, len(ts)) - 1
    return (ts[starts], open_[starts], np.maximum.reduceat(high, starts),
            np.minimum.reduceat(low, starts), close[ends]), k


def envelope_bucket(count: int, max_points: int) -> int:
    """How many samples :func:`envelope` reduces to two (1: all are kept)."""
    return 1 if count <= max_points else bucket_size(count, max(1, max_points // 2 - 1))


def envelope(values: FloatArray, max_points: int) -> IntArray:
    """The indices (sorted) of at most ``max_points`` samples of ``values`` that keep its
    lowest and highest sample per bucket."""
    count = len(values)
    k = envelope_bucket(count, max_points)
    if k == 1:
        return np.arange(count, dtype=np.int64)
    whole = count // k
    body = values[: whole * k].reshape(whole, k)
    offsets = np.arange(whole, dtype=np.int64) * k
    picked = [offsets + np.argmin(body, axis=1), offsets + np.argmax(body, axis=1),
              np.array([0, count - 1], dtype=np.int64)]
    if whole * k < count:
        tail = values[whole * k:]
        picked.append(np.array([whole * k + np.argmin(tail), whole * k + np.argmax(tail)],
                               dtype=np.int64))
    return np.unique(np.concatenate(picked))
