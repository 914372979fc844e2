"""What a file of bars holds, symbol by symbol, learnt in one checking pass without building a
bar: how many bars, their first and last time, and the most decimals its prices are written
with (the data's tick, when the user gives none). A backtest surveys its files before it starts,
so a bad row stops it before the first bar, and a long-format file's symbols are known.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np

from lts.plugins.pipeline.bars_file import BarsFile
from lts.plugins.pipeline.bars_source import PRICE_COLUMNS

__all__ = ["SAMPLE_ROWS", "SymbolSurvey", "decimals_of", "survey"]

#: the rows of each symbol whose prices decide its decimals
SAMPLE_ROWS = 10_000
#: a price written with more significant digits is a float's noise (0.1 + 0.2 written as
#: 0.30000000000000004): its decimals are read from 15 significant digits
_SIGNIFICANT = 15


@dataclass
class SymbolSurvey:
    symbol: str
    bars: int
    first_ts: int
    last_ts: int
    #: the most decimals of the prices (open, high, low, close) in the first SAMPLE_ROWS rows
    price_decimals: int
    complete: bool = True  # every row surveyed (else: the sample only)


def decimals_of(price: str | float | int | Decimal) -> int:
    """Decimals a price is written with, trailing zeros aside: ``"1.12340"`` -> 4, ``"100"`` ->
    0, ``1.23e-05`` -> 7. A float is read in its shortest form (``repr``)."""
    text = repr(price) if isinstance(price, float) else str(price).strip()
    if len(text) <= _SIGNIFICANT and "e" not in text and "E" not in text:
        _, dot, fraction = text.partition(".")  # the common case, 4x faster than a Decimal
        fraction = fraction.rstrip("0")
        if not dot or fraction.isdigit() or not fraction:
            return len(fraction)
    try:
        value = Decimal(text)
    except InvalidOperation:
        return 0
    if not value.is_finite():
        return 0
    if len(value.as_tuple().digits) > _SIGNIFICANT:
        value = Decimal(format(float(value), f".{_SIGNIFICANT}g"))
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def survey(bars_file: BarsFile, sample_rows: int = SAMPLE_ROWS, *,
           whole: bool = True) -> dict[str, SymbolSurvey]:
    """Check every row of the file and tell what it holds per symbol (a long-format file: every
    symbol in it, whichever ``bars_file`` selects), in the order symbols first appear. With
    ``whole=False`` a file of one symbol is read only as far as the sample (its rows beyond are
    checked as they stream): ``bars`` and ``last_ts`` then tell about the sample only, and
    ``complete`` is False."""
    found: dict[str, SymbolSurvey] = {}
    for chunk in bars_file.checked():
        if chunk.symbols is None or chunk.codes is None:
            groups: Iterable[tuple[str, np.ndarray]] = [
                (bars_file.symbol or "", np.arange(len(chunk.ts)))]
        else:
            groups = ((s, np.flatnonzero(chunk.codes == code))
                      for code, s in enumerate(chunk.symbols))
        for symbol, rows in groups:
            if not len(rows):
                continue
            seen = found.get(symbol)
            if seen is None:
                seen = found[symbol] = SymbolSurvey(symbol, 0, int(chunk.ts[rows[0]]), 0, 0)
            wanted = rows[:max(0, sample_rows - seen.bars)]
            if len(wanted):
                # the sampled rows as Python values, read off a slice (pa.array() would
                # import pandas: 0.3 s of a backtest's start-up)
                last = int(wanted[-1]) + 1
                columns = [chunk.raw.values[index].slice(0, last).to_pylist()
                           for index in range(len(PRICE_COLUMNS))]
                prices = ([col[i] for i in wanted] for col in columns)
                seen.price_decimals = max(seen.price_decimals,
                                          *(decimals_of(p) for col in prices for p in col))
            seen.bars += len(rows)
            seen.last_ts = int(chunk.ts[rows[-1]])
        if not whole and chunk.symbols is None and \
                all(s.bars >= sample_rows for s in found.values()):
            for seen in found.values():
                seen.complete = False
            break
    return found
