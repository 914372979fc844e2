"""Loading historical OHLCV bars from CSV or Parquet, with the checks a backtest needs.

CSV: a header row; the first column holds the timestamp (named or unnamed: ISO 8601 text, or
epoch seconds, milliseconds, microseconds or nanoseconds); columns open, high, low, close, volume
in any letter case. Every problem (missing file or column, non-numeric or NaN price, unsorted or
duplicate timestamps) raises :class:`~lts.errors.DataError` with one line naming the row.
Parsing runs in pyarrow's C reader; callers run :func:`load_bars` in a worker thread.
"""

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from lts.domain.market import Bar
from lts.errors import DataError

COLUMNS = ("open", "high", "low", "close", "volume")


def load_bars(path: str | Path, symbol: str) -> list[Bar]:
    table = read_table(Path(path))
    ts = timestamps_ns(table.column(0), table.column_names[0] or "column 1")
    cols = [_numeric(table, name) for name in COLUMNS]
    return [Bar(symbol, t, o, h, lo, c, v) for t, o, h, lo, c, v in zip(ts, *cols, strict=True)]


def read_table(path: Path) -> pa.Table:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pq.read_table(path)
        else:
            # only an empty field is missing; "NaN" must reach the NaN check by its name
            table = pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(
                null_values=[""], strings_can_be_null=False))
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read: {first}") from None
    if table.num_rows == 0:
        raise DataError(f"{path}: no rows")
    lower = {name.lower().strip(): i for i, name in enumerate(table.column_names)}
    missing = [c for c in COLUMNS if c not in lower]
    if missing:
        raise DataError(f"{path}: missing column(s): {', '.join(missing)}")
    names = [table.column_names[0]] + [table.column_names[lower[c]] for c in COLUMNS]
    table = table.select([0] + [lower[c] for c in COLUMNS])
    return table.rename_columns([names[0], *COLUMNS])


def _row_of(mask: Any) -> int:
    """1-based data row of the first true value in a boolean array."""
    return int(pc.index(mask, True).as_py()) + 1


def _numeric(table: pa.Table, name: str) -> list[float]:
    col = table.column(name)
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
        try:
            col = pc.cast(col, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad = [i for i, v in enumerate(col.to_pylist()) if not _is_number(v)]
            row = bad[0] + 1 if bad else 0
            value = col[bad[0]].as_py() if bad else "?"
            raise DataError(f"column {name!r}: non-numeric value {value!r} in row {row}") from None
    col = pc.cast(col, pa.float64())
    if col.null_count:
        raise DataError(f"column {name!r}: empty value in row {_row_of(pc.is_null(col))}")
    if pc.any(pc.is_nan(col)).as_py():
        raise DataError(f"column {name!r}: NaN in row {_row_of(pc.is_nan(col))}")
    if pc.any(pc.is_inf(col)).as_py():
        raise DataError(f"column {name!r}: infinite value in row {_row_of(pc.is_inf(col))}")
    if name != "volume" and pc.any(pc.less_equal(col, 0)).as_py():
        raise DataError(f"column {name!r}: price <= 0 in row {_row_of(pc.less_equal(col, 0))}")
    return list(col.to_pylist())


def _is_number(v: object) -> bool:
    try:
        float(str(v))
    except ValueError:
        return False
    return True


def _first_unparsable(col: pa.ChunkedArray) -> str:
    for i, value in enumerate(col.to_pylist()):
        try:
            pc.cast(pa.array([str(value)]), pa.timestamp("ns"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return f"cannot parse {value!r} in row {i + 1}"
    return "cannot parse the timestamps"


_UNIT_LIMITS = ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3))


def timestamps_ns(col: pa.ChunkedArray, name: str) -> list[int]:
    if col.null_count:
        raise DataError(f"timestamp column {name!r}: empty value in row "
                        f"{_row_of(pc.is_null(col))}")
    if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
        ns = pc.cast(pc.cast(col, pa.timestamp("ns")), pa.int64())
    elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        top = pc.max(pc.abs(col)).as_py()
        scale = next((s for limit, s in _UNIT_LIMITS if top < limit), 1)
        if pa.types.is_integer(col.type):  # exact: integer arithmetic
            ns = pc.multiply(pc.cast(col, pa.int64()), pa.scalar(scale, pa.int64()))
        else:
            ns = pc.cast(pc.multiply(pc.cast(col, pa.float64()), scale), pa.int64())
    else:
        try:
            ns = pc.cast(pc.cast(pc.cast(col, pa.string()), pa.timestamp("ns")), pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(f"timestamp column {name!r}: {_first_unparsable(col)}") from None
    values: list[int] = ns.to_pylist()
    for i in range(1, len(values)):
        if values[i] <= values[i - 1]:
            what = "duplicate" if values[i] == values[i - 1] else "unsorted"
            raise DataError(f"timestamp column {name!r}: {what} timestamp in row {i + 1}")
    return values
