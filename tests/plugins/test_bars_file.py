"""Loading OHLCV bars from CSV and Parquet: the accepted shapes, and one clear line per problem
(SYS-001 data in, SYS-011 bad input is an error with a message, never a traceback)."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lts.domain.market import Bar
from lts.errors import DataError
from lts.plugins.pipeline.bars_file import load_bars

from ._support import MINUTE, T0

HEADER = "ts,open,high,low,close,volume"
ROWS = ["{t},100,101,99,100.5,10", "{t2},100.5,102,100,101.5,20"]


def write_csv(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def csv_of(first: str, second: str, header: str = HEADER) -> str:
    return "\n".join([header, ROWS[0].format(t=first), ROWS[1].format(t2=second)]) + "\n"


def expected(t0: int = T0, t1: int = T0 + MINUTE, symbol: str = "AAA") -> list[Bar]:
    return [Bar(symbol, t0, 100.0, 101.0, 99.0, 100.5, 10.0),
            Bar(symbol, t1, 100.5, 102.0, 100.0, 101.5, 20.0)]


# -- accepted shapes ------------------------------------------------------------------------------

@pytest.mark.parametrize(("first", "second"), [
    ("2024-01-02T00:00:00", "2024-01-02T00:01:00"),
    ("2024-01-02 00:00:00", "2024-01-02 00:01:00"),
    ("2024-01-02T00:00:00Z", "2024-01-02T00:01:00Z"),
    ("2024-01-02T01:00:00+01:00", "2024-01-02T01:01:00+01:00"),
    ("1704153600", "1704153660"),                            # epoch seconds
    ("1704153600000", "1704153660000"),                      # epoch milliseconds
    ("1704153600000000", "1704153660000000"),                # epoch microseconds
    ("1704153600000000000", "1704153660000000000"),          # epoch nanoseconds
], ids=["iso-t", "iso-space", "iso-z", "iso-offset", "epoch-s", "epoch-ms", "epoch-us", "epoch-ns"])
def test_timestamps_iso_or_epoch(tmp_path: Path, first: str, second: str) -> None:
    assert load_bars(write_csv(tmp_path, csv_of(first, second)), "AAA") == expected()


def test_iso_dates(tmp_path: Path) -> None:
    bars = load_bars(write_csv(tmp_path, csv_of("2024-01-02", "2024-01-03")), "AAA")
    assert [b.ts_event for b in bars] == [T0, T0 + 24 * 60 * MINUTE]


def test_unnamed_first_column_holds_the_time(tmp_path: Path) -> None:
    text = csv_of("1704153600", "1704153660", header=",open,high,low,close,volume")
    assert load_bars(write_csv(tmp_path, text), "AAA") == expected()


def test_column_names_in_any_case_and_order(tmp_path: Path) -> None:
    text = ("Time,VOLUME,Close,low,High,OPEN\n"
            "1704153600,10,100.5,99,101,100\n1704153660,20,101.5,100,102,100.5\n")
    assert load_bars(write_csv(tmp_path, text), "AAA") == expected()


def test_extra_columns_are_ignored(tmp_path: Path) -> None:
    text = (f"{HEADER},note\n1704153600,100,101,99,100.5,10,a\n"
            "1704153660,100.5,102,100,101.5,20,b\n")
    assert load_bars(write_csv(tmp_path, text), "AAA") == expected()


def test_parquet_with_a_timestamp_column(tmp_path: Path) -> None:
    table = pa.table({
        "timestamp": pa.array([T0, T0 + MINUTE], pa.timestamp("ns", tz="UTC")),
        "Open": [100.0, 100.5], "High": [101.0, 102.0], "Low": [99.0, 100.0],
        "Close": [100.5, 101.5], "Volume": [10, 20],
    })
    path = tmp_path / "bars.parquet"
    pq.write_table(table, path)
    assert load_bars(path, "AAA") == expected()


def test_parquet_with_epoch_milliseconds(tmp_path: Path) -> None:
    table = pa.table({"t": pa.array([T0 // 1_000_000, (T0 + MINUTE) // 1_000_000], pa.int64()),
                      "open": [100.0, 100.5], "high": [101.0, 102.0], "low": [99.0, 100.0],
                      "close": [100.5, 101.5], "volume": [10.0, 20.0]})
    path = tmp_path / "bars.pq"
    pq.write_table(table, path)
    assert load_bars(path, "AAA") == expected()


def test_epoch_milliseconds_convert_exactly(tmp_path: Path) -> None:
    text = csv_of("1704153600123", "1704153660456")
    bars = load_bars(write_csv(tmp_path, text), "AAA")
    assert [b.ts_event for b in bars] == [1_704_153_600_123_000_000, 1_704_153_660_456_000_000]


# -- one line per problem -------------------------------------------------------------------------

GOOD = "1704153600,100,101,99,100.5,10"


def bad_csv(second_row: str, header: str = HEADER) -> str:
    return f"{header}\n{GOOD}\n{second_row}\n"


@pytest.mark.parametrize(("text", "needles"), [
    (bad_csv("1704153660,100,x2,99,100.5,10"), ["'high'", "'x2'", "row 2"]),
    (bad_csv("1704153660,100,,99,100.5,10"), ["'high'", "empty", "row 2"]),
    (bad_csv("1704153660,100,101,99,nan,10"), ["'close'", "row 2"]),
    (bad_csv("1704153660,100,inf,99,100.5,10"), ["'high'", "infinite", "row 2"]),
    (bad_csv("1704153660,100,101,0,100.5,10"), ["'low'", "<= 0", "row 2"]),
    (bad_csv("1704153660,100,101,-3,100.5,10"), ["'low'", "<= 0", "row 2"]),
    (bad_csv("1704153600,100,101,99,100.5,10"), ["'ts'", "duplicate", "row 2"]),
    (bad_csv("1704153500,100,101,99,100.5,10"), ["'ts'", "unsorted", "row 2"]),
    (bad_csv(",100,101,99,100.5,10"), ["'ts'", "empty", "row 2"]),
    (bad_csv("1704153500,100,101,99,100.5,10", header=",open,high,low,close,volume"),
     ["'column 1'", "unsorted", "row 2"]),
    (f"{HEADER}\nyesterday,100,101,99,100.5,10\n", ["'ts'", "'yesterday'"]),
    ("ts,open,high,close\n1,1,2,1\n", ["missing column(s): low, volume"]),
    (f"{HEADER}\n", ["no rows"]),
    ("", ["cannot read"]),
    (bad_csv("1704153660,100,101"), ["cannot read"]),
], ids=["non-numeric", "empty-price", "nan", "inf", "zero-price", "negative-price", "duplicate",
        "unsorted", "empty-time", "unsorted-unnamed", "bad-time", "missing-columns", "no-rows",
        "empty-file", "short-row"])
def test_bad_input_is_one_line_naming_where(tmp_path: Path, text: str,
                                            needles: list[str]) -> None:
    with pytest.raises(DataError) as err:
        load_bars(write_csv(tmp_path, text), "AAA")
    message = str(err.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message


def test_a_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError) as err:
        load_bars(path, "AAA")
    assert str(err.value) == f"{path}: no such file"


def test_nan_in_parquet_names_the_column_and_row(tmp_path: Path) -> None:
    table = pa.table({"t": [1, 2, 3], "open": [1.0, 1.0, float("nan")], "high": [2.0] * 3,
                      "low": [0.5] * 3, "close": [1.5] * 3, "volume": [1.0] * 3})
    path = tmp_path / "nan.parquet"
    pq.write_table(table, path)
    with pytest.raises(DataError) as err:
        load_bars(path, "AAA")
    assert str(err.value) == "column 'open': NaN in row 3"


def test_a_corrupt_parquet_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError) as err:
        load_bars(path, "AAA")
    assert str(err.value).startswith(f"{path}: cannot read: ")
    assert "\n" not in str(err.value)


def test_an_unparsable_time_names_its_row(tmp_path: Path) -> None:
    text = f"{HEADER}\n2024-01-02T00:00:00,100,101,99,100.5,10\nnope,100,101,99,100.5,10\n"
    with pytest.raises(DataError) as err:
        load_bars(write_csv(tmp_path, text), "AAA")
    assert "row 2" in str(err.value)
    assert "'nope'" in str(err.value)
