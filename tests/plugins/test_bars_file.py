"""Loading OHLCV bars from CSV and Parquet, whole or streamed: the accepted shapes, and one clear
line per problem naming the file and the CSV's physical line (Parquet: its row) (SYS-001 data
in; SYS-011/SYS-018 bad input is an error with a message, never a traceback; SYS-009 memory)."""

import gc
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lts.domain.market import Bar
from lts.errors import DataError
from lts.plugins.pipeline.bars_file import iter_bars, load_bars
from lts.plugins.pipeline.bars_source import CSV_BLOCK, PARQUET_ROWS

from ._support import MINUTE, T0

HEADER = "ts,open,high,low,close,volume"
ROWS = ["{t},100,101,99,100.5,10", "{t2},100.5,102,100,101.5,20"]
REPO = Path(__file__).resolve().parents[2]


def write_csv(tmp_path: Path, text: str | bytes, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def csv_of(first: str, second: str, header: str = HEADER) -> str:
    return "\n".join([header, ROWS[0].format(t=first), ROWS[1].format(t2=second)]) + "\n"


def expected(t0: int = T0, t1: int = T0 + MINUTE, symbol: str = "AAA") -> list[Bar]:
    return [Bar(symbol, t0, 100.0, 101.0, 99.0, 100.5, 10.0),
            Bar(symbol, t1, 100.5, 102.0, 100.0, 101.5, 20.0)]


def minute_rows(n: int, start: int = 1_704_153_600) -> list[str]:
    """n one-minute bars in epoch seconds, prices moving by a cent."""
    return [f"{start + 60 * i},{100 + i % 50 / 100:.2f},{101 + i % 50 / 100:.2f},"
            f"{99 + i % 50 / 100:.2f},{100.5 + i % 50 / 100:.2f},{i % 1000}" for i in range(n)]


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
    ("1704153600.0", "1704153660.0"),                        # epoch seconds, decimal
], ids=["iso-t", "iso-space", "iso-z", "iso-offset", "epoch-s", "epoch-ms", "epoch-us", "epoch-ns",
        "epoch-s-decimal"])
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


def test_extra_columns_are_ignored_even_when_not_utf8(tmp_path: Path) -> None:
    text = (f"{HEADER},note\n1704153600,100,101,99,100.5,10,a\n"
            "1704153660,100.5,102,100,101.5,20,caf\xe9\n").encode("latin-1")
    assert load_bars(write_csv(tmp_path, text), "AAA") == expected()


def test_crlf_blank_lines_and_a_byte_order_mark(tmp_path: Path) -> None:
    """SYS-012: a file saved on Windows (BOM, CRLF, a blank line) reads the same."""
    text = ("\ufeff" + HEADER + "\r\n1704153600,100,101,99,100.5,10\r\n\r\n"
            "1704153660,100.5,102,100,101.5,20\r\n").encode()
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
    """A header (line 1), a good row (line 2) and ``second_row`` (line 3)."""
    return f"{header}\n{GOOD}\n{second_row}\n"


BEYOND = "is beyond the int64 nanosecond range (1677-09-21 to 2262-04-11)"


@pytest.mark.parametrize(("text", "message"), [
    (bad_csv("1704153660,100,x2,99,100.5,10"), "column 'high': non-numeric value 'x2' in line 3"),
    (bad_csv("1704153660,100,,99,100.5,10"), "column 'high': empty value in line 3"),
    (bad_csv("1704153660,100,101,99,nan,10"), "column 'close': NaN in line 3"),
    (bad_csv("1704153660,100,101,99,NaN,10"), "column 'close': NaN in line 3"),
    (bad_csv("1704153660,100,inf,99,100.5,10"), "column 'high': infinite value in line 3"),
    (bad_csv("1704153660,100,101,0,100.5,10"), "column 'low': price <= 0 in line 3"),
    (bad_csv("1704153660,100,101,-3,100.5,10"), "column 'low': price <= 0 in line 3"),
    (bad_csv("1704153660,100,101,99,100.5,-5"), "column 'volume': negative volume -5 in line 3"),
    (bad_csv("1704153660,100,98,99,98.5,10"), "high 98 below low 99 in line 3"),
    (bad_csv("1704153660,100,99.5,99,99.2,10"), "high 99.5 below open 100 in line 3"),
    (bad_csv("1704153660,100,101,99,101.5,10"), "high 101 below close 101.5 in line 3"),
    (bad_csv("1704153660,100,101,100.2,100.5,10"), "low 100.2 above open 100 in line 3"),
    (bad_csv("1704153660,100.5,101,100.2,100,10"), "low 100.2 above close 100 in line 3"),
    (bad_csv("1704153600,100,101,99,100.5,10"),
     "timestamp column 'ts': duplicate timestamp in line 3"),
    (bad_csv("1704153500,100,101,99,100.5,10"),
     "timestamp column 'ts': unsorted timestamp in line 3"),
    (bad_csv(",100,101,99,100.5,10"), "timestamp column 'ts': empty value in line 3"),
    (bad_csv("1704153500,100,101,99,100.5,10", header=",open,high,low,close,volume"),
     "timestamp column 'column 1': unsorted timestamp in line 3"),
    (f"{HEADER}\nyesterday,100,101,99,100.5,10\n",
     "timestamp column 'ts': cannot parse 'yesterday' in line 2"),
    (bad_csv("nope,100,101,99,100.5,10"), "timestamp column 'ts': cannot parse 'nope' in line 3"),
    (f"{HEADER}\n99999999999999999999999,100,101,99,100.5,10\n",
     f"timestamp column 'ts': '99999999999999999999999' in line 2 {BEYOND}"),
    (bad_csv("99999999999999999999999,100,101,99,100.5,10"),
     f"timestamp column 'ts': '99999999999999999999999' in line 3 {BEYOND}"),
    (f"{HEADER}\n10000000000,100,101,99,100.5,10\n",  # seconds: year 2286
     f"timestamp column 'ts': '10000000000' in line 2 {BEYOND}"),
    (f"{HEADER}\n2024-01-02,100,101,99,100.5,10\n3000-01-01,100,101,99,100.5,10\n",
     f"timestamp column 'ts': '3000-01-01' in line 3 {BEYOND}"),
    (bad_csv("1704153660000,100,101,99,100.5,10"),
     "timestamp column 'ts': '1704153660000' is not in epoch seconds like the first row "
     "in line 3"),
    ("ts,open,high,close\n1,1,2,1\n",
     "missing column(s): low, volume; found 4 column(s): 'ts', 'open', 'high', 'close'"),
    ("ts;open;high;low;close;volume\n1;1;2;1;1;1\n",
     "missing column(s): open, high, low, close, volume; found 1 column(s): "
     "'ts;open;high;low;close;volume' (separated by ';'? write the file with commas between "
     "columns)"),
    ("ts\topen\thigh\tlow\tclose\tvolume\n1\t1\t2\t1\t1\t1\n",
     "missing column(s): open, high, low, close, volume; found 1 column(s): "
     "'ts\\topen\\thigh\\tlow\\tclose\\tvolume' (separated by tabs? write the file with "
     "commas between columns)"),
    ("ts,open,high,low,Close,close\n1,1,2,1,1,1\n",
     "column 'close' appears twice ('Close' and 'close')"),
    (f"{HEADER}\n", "no rows"),
    (f"{HEADER}\n\n\n", "no rows"),
    ("", "cannot read: the file is empty"),
    (bad_csv("1704153660,100,101"), "3 field(s) in line 3, the header has 6"),
    (b"ts,op\xe9n,high,low,close,volume\n" + GOOD.encode() + b"\n",
     "not UTF-8 text in line 1: byte 0xe9 at position 6; save the file as UTF-8"),
    (bad_csv("1704153660,100,101,99,100.5,10").encode() + b"1704153720,10\xe9,101,99,100,1\n",
     "not UTF-8 text in line 4: byte 0xe9 at position 14; save the file as UTF-8"),
], ids=["non-numeric", "empty-price", "nan", "NaN", "inf", "zero-price", "negative-price",
        "negative-volume", "high-below-low", "high-below-open", "high-below-close",
        "low-above-open", "low-above-close", "duplicate", "unsorted", "empty-time",
        "unsorted-unnamed", "bad-time-first", "bad-time", "int64-first", "int64", "int64-seconds",
        "iso-year-3000", "unit-change", "missing-columns", "semicolons", "tabs", "column-twice",
        "no-rows", "only-blank-lines", "empty-file", "short-row", "latin1-header", "latin1-body"])
def test_bad_input_is_one_line_naming_file_and_line(tmp_path: Path, text: str | bytes,
                                                    message: str) -> None:
    path = write_csv(tmp_path, text)
    with pytest.raises(DataError) as err:
        load_bars(path, "AAA")
    assert str(err.value) == f"{path}: {message}"


def test_the_earliest_bad_row_is_the_one_named(tmp_path: Path) -> None:
    """A chunk with several problems names the first row, whatever the column."""
    text = (f"{HEADER}\n{GOOD}\n1704153660,100,101,99,100.5,-1\n"
            "1704153720,100,101,99,nan,10\n")
    path = write_csv(tmp_path, text)
    with pytest.raises(DataError) as err:
        load_bars(path, "AAA")
    assert str(err.value) == f"{path}: column 'volume': negative volume -1 in line 3"


def test_lines_count_blank_lines_and_crlf(tmp_path: Path) -> None:
    """The line is the one an editor shows: blank lines count (pyarrow skips them)."""
    text = (f"\r\n{HEADER}\r\n\r\n{GOOD}\r\n\r\n\r\n1704153660,100,101,99,nan,10\r\n").encode()
    path = write_csv(tmp_path, text)
    with pytest.raises(DataError) as err:
        load_bars(path, "AAA")
    assert str(err.value) == f"{path}: column 'close': NaN in line 7"


def _second_block_start(rows: list[str]) -> int:
    """Index of the first row of the reader's second CSV block (blocks end at a line end)."""
    offset = 0
    for i, row in enumerate(rows):
        if offset >= CSV_BLOCK:
            return i
        offset += len(row) + 1
    raise AssertionError("the rows fit in one block")


@pytest.mark.parametrize("what", ["duplicate", "unsorted"])
def test_order_is_checked_across_chunk_boundaries(tmp_path: Path, what: str) -> None:
    rows = minute_rows(60_000)
    first = _second_block_start(rows)
    earlier = rows[first - 1].split(",")[0] if what == "duplicate" else "1704153000"
    rows[first] = ",".join([earlier, *rows[first].split(",")[1:]])
    path = write_csv(tmp_path, "\n".join([HEADER, *rows]) + "\n")
    with pytest.raises(DataError) as err:
        load_bars(path, "AAA")
    assert str(err.value) == f"{path}: timestamp column 'ts': {what} timestamp in line {first + 2}"


def test_a_bad_row_deep_in_a_big_file_names_its_line(tmp_path: Path) -> None:
    rows = minute_rows(100_000)
    rows[87_654] = rows[87_654].replace(",", ",x", 1)
    path = write_csv(tmp_path, "\n".join([HEADER, *rows]) + "\n")
    with pytest.raises(DataError) as err:
        load_bars(path, "AAA")
    assert f"non-numeric value 'x{rows[87_654].split(',')[1][1:]}' in line 87656" in str(err.value)


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
    assert str(err.value) == f"{path}: column 'open': NaN in row 3"


def test_parquet_bar_shape_and_order_across_batches(tmp_path: Path) -> None:
    n = PARQUET_ROWS + 10
    t = [T0 + i * MINUTE for i in range(n)]
    t[PARQUET_ROWS] = t[PARQUET_ROWS - 1]  # first row of the second batch
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table({"t": pa.array(t, pa.timestamp("ns")), "open": [1.0] * n,
                             "high": [2.0] * n, "low": [0.5] * n, "close": [1.5] * n,
                             "volume": [1.0] * n}), path)
    with pytest.raises(DataError) as err:
        load_bars(path, "AAA")
    assert str(err.value) == (f"{path}: timestamp column 't': duplicate timestamp in row "
                              f"{PARQUET_ROWS + 1}")
    pq.write_table(pa.table({"t": [1, 2], "open": [1.0, 1.0], "high": [2.0, 0.9],
                             "low": [0.5, 0.5], "close": [1.5, 0.8], "volume": [1, 1]}), path)
    with pytest.raises(DataError) as err:
        load_bars(path, "AAA")
    assert str(err.value) == f"{path}: high 0.9 below open 1.0 in row 2"


def test_a_corrupt_parquet_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError) as err:
        load_bars(path, "AAA")
    assert str(err.value).startswith(f"{path}: cannot read: ")
    assert "\n" not in str(err.value)


# -- streaming ------------------------------------------------------------------------------------

def test_streaming_gives_the_bars_load_gives_in_batches(tmp_path: Path) -> None:
    rows = minute_rows(70_000)  # several CSV blocks
    path = write_csv(tmp_path, "\n".join([HEADER, *rows]) + "\n")
    batches = list(iter_bars(path, "AAA", batch=1000))
    assert all(1 <= len(b) <= 1000 for b in batches)
    streamed = [bar for b in batches for bar in b]
    assert streamed == load_bars(path, "AAA")
    assert len(streamed) == 70_000
    assert streamed[-1] == Bar("AAA", (1_704_153_600 + 60 * 69_999) * 10**9, 100.49, 101.49,
                               99.49, 100.99, 999.0)


def test_streaming_parquet_in_batches(tmp_path: Path) -> None:
    n = PARQUET_ROWS * 2 + 5
    path = tmp_path / "bars.parquet"
    pq.write_table(pa.table({"t": [1_704_153_600 + 60 * i for i in range(n)],
                             "open": [1.0] * n, "high": [2.0] * n, "low": [0.5] * n,
                             "close": [1.5] * n, "volume": list(range(n))}), path)
    batches = list(iter_bars(path, "P", batch=10_000))
    assert max(len(b) for b in batches) == 10_000
    assert [bar.volume for b in batches for bar in b] == [float(i) for i in range(n)]
    assert [bar for b in batches for bar in b] == load_bars(path, "P")


def test_streaming_stops_at_the_bad_chunk_not_before(tmp_path: Path) -> None:
    """The bars before a bad chunk arrive; the problem is raised when its chunk is read."""
    rows = minute_rows(60_000)
    rows[-1] = rows[-1].replace(",", ",nope", 1)
    path = write_csv(tmp_path, "\n".join([HEADER, *rows]) + "\n")
    got: list[Bar] = []
    with pytest.raises(DataError, match="line 60001"):
        got.extend(bar for batch in iter_bars(path, "AAA", batch=4096) for bar in batch)
    assert len(got) >= 4096


def test_streaming_holds_a_bounded_part_of_the_file(tmp_path: Path) -> None:
    """SYS-009: streaming 300,000 bars never holds more than a small part of what holding
    them all takes (Python allocations traced; a ratio, not a timing)."""
    rows = minute_rows(300_000)
    path = write_csv(tmp_path, "\n".join([HEADER, *rows]) + "\n")
    load_bars(write_csv(tmp_path, csv_of("1", "2"), "warm.csv"), "W")  # imports, caches
    gc.collect()
    tracemalloc.start()
    try:
        count = 0
        for batch in iter_bars(path, "AAA", batch=4096):
            count += len(batch)
        _, streaming_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        held = load_bars(path, "AAA")
        holding = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert count == len(held) == 300_000
    assert streaming_peak * 10 < holding, (streaming_peak, holding)


# -- the command line -----------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "expect"), [
    (f"{HEADER}\n{GOOD}\n99999999999999999999999,100,101,99,100.5,10\n".encode(),
     f"timestamp column 'ts': '99999999999999999999999' in line 3 {BEYOND}"),
    (b"ts,op\xe9n,high,low,close,volume\n" + GOOD.encode() + b"\n",
     "not UTF-8 text in line 1: byte 0xe9 at position 6; save the file as UTF-8"),
], ids=["int64", "latin1"])
def test_replay_command_says_one_line_and_exits_2(tmp_path: Path, content: bytes,
                                                  expect: str) -> None:
    """SYS-011: ``python -m lts.engine replay BADFILE`` prints one ``lts: error:`` line with the
    file and line, no traceback, and exits 2."""
    path = write_csv(tmp_path, content, "bad.csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LTS_")}
    run = subprocess.run([sys.executable, "-m", "lts.engine", "replay", str(path), "--symbol",
                          "X", "--strategy", "buy_and_hold"], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=90)
    assert run.returncode == 2, run.stderr
    assert run.stderr.splitlines() == [f"lts: error: {path}: {expect}"]
    assert run.stdout == ""
