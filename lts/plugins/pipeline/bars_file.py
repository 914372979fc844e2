"""Historical OHLCV bars from a CSV or Parquet file, streamed in batches or loaded whole, with
the checks a backtest needs: where the replay pipeline and the backtest's market data get bars.

CSV: a header row; the first column holds the timestamp (named or unnamed: ISO 8601 text, or
epoch seconds, milliseconds, microseconds or nanoseconds); columns open, high, low, close,
volume in any letter case; optionally a ``symbol`` column (the long format: the rows of several
symbols, sorted by time). Parquet: the same columns, typed. Every problem raises
:class:`~lts.errors.DataError` with one line naming the file and where (``line N`` of a CSV,
``row N`` of a Parquet file): see :mod:`~lts.plugins.pipeline.bars_checks`.

:func:`iter_bars` reads the file a chunk at a time (a quarter megabyte of CSV) and never holds it
whole; :func:`load_bars` collects every bar (the checks done before it returns). Both block:
callers run them (or each ``next``) in a worker thread.
"""

from collections.abc import Iterator
from itertools import repeat
from pathlib import Path

import numpy as np

from lts.domain.market import Bar
from lts.errors import DataError
from lts.plugins.pipeline.bars_checks import BarChecker, CheckedChunk
from lts.plugins.pipeline.bars_source import COLUMNS, BarsSource
from lts.plugins.pipeline.read_ahead import read_ahead

__all__ = ["COLUMNS", "DEFAULT_BATCH", "BarsFile", "iter_bars", "load_bars"]

DEFAULT_BATCH = 4096


class BarsFile:
    """One file of bars. ``symbol`` names the bars of a file without a ``symbol`` column (it
    is then required); in a long-format file it selects that symbol's rows (None: all rows,
    each with its own symbol)."""

    def __init__(self, path: str | Path, symbol: str | None = None) -> None:
        self.source = BarsSource(path)
        self.path = self.source.path
        if symbol is None and not self.source.has_symbols:
            raise DataError(f"{self.path}: no symbol column: name the symbol of its bars")
        self.symbol = symbol
        self._interned: dict[str, str] = {}

    def checked(self) -> Iterator[CheckedChunk]:
        """Every chunk of the file, checked, in file order."""
        checker = BarChecker(self.source)
        rows = 0
        for raw in self.source.chunks():
            chunk = checker.check(raw)
            rows += len(chunk.ts)
            yield chunk
        if rows == 0:
            raise DataError(f"{self.path}: no rows")

    def batches(self, batch: int = DEFAULT_BATCH, *, share_floats: bool = True,
                ahead: bool = False) -> Iterator[list[Bar]]:
        """The bars in file order, at most ``batch`` per list. ``share_floats``: one float object
        per distinct price or volume of a chunk, for a caller that holds every bar (a bar's
        open is often the last close, its high or low its open or close: 250 -> 138 MiB for
        1M bars held); a caller that drops each batch passes False (sharing costs time).
        ``ahead``: the next chunks are read and checked on a thread meanwhile
        (:mod:`~lts.plugins.pipeline.read_ahead`), for a caller with work to do between
        batches."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        sent = 0
        for chunk in read_ahead(self.checked()) if ahead else self.checked():
            for bars in self._bars(chunk, batch, share_floats):
                sent += len(bars)
                yield bars
        if not sent:  # a long-format file without the symbol asked for
            raise DataError(f"{self.path}: no rows of {self.symbol}")

    def _bars(self, chunk: CheckedChunk, batch: int, share_floats: bool
              ) -> Iterator[list[Bar]]:
        ts, values = chunk.ts, chunk.values
        names: Iterator[str] | list[str]
        per_row: np.ndarray | None = None
        if chunk.symbols is None or chunk.codes is None:
            names = repeat(self.symbol or "")
        elif self.symbol is not None:  # one symbol of a long-format file
            if self.symbol not in chunk.symbols:
                return
            rows = np.flatnonzero(chunk.codes == chunk.symbols.index(self.symbol))
            ts, values = ts[rows], tuple(v[rows] for v in values)
            names = repeat(self.symbol)
        else:  # every row with its own symbol, one str object per symbol
            own = np.array([self._interned.setdefault(s, s) for s in chunk.symbols], object)
            per_row = own[chunk.codes]
        columns: np.ndarray = np.stack(values)
        if share_floats:  # the chunk's distinct values, one float object each, put back in place
            distinct, where = np.unique(columns, return_inverse=True)
            columns = distinct.astype(object)[where.reshape(columns.shape)]
        for i in range(0, len(ts), batch):
            if per_row is not None:
                names = per_row[i:i + batch].tolist()
            yield list(map(Bar, names, ts[i:i + batch].tolist(),
                           *columns[:, i:i + batch].tolist()))


def iter_bars(path: str | Path, symbol: str | None, batch: int = DEFAULT_BATCH, *,
              share_floats: bool = False) -> Iterator[list[Bar]]:
    """The file's bars in batches of at most ``batch``, read and checked a chunk at a time. A
    problem raises :class:`~lts.errors.DataError` when its chunk is reached (the header and
    columns at the first ``next``). A stream: each batch is dropped after use, so floats are
    shared only when asked (see :meth:`BarsFile.batches`)."""
    yield from BarsFile(path, symbol).batches(batch, share_floats=share_floats)


def load_bars(path: str | Path, symbol: str | None) -> list[Bar]:
    """Every bar of the file, checked (:func:`iter_bars`, collected)."""
    bars: list[Bar] = []
    for batch in iter_bars(path, symbol, batch=65_536, share_floats=True):
        bars.extend(batch)
    return bars
