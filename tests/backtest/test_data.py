"""A backtest's market data: several files, a directory or one long-format file, merged in time
order and streamed; the tick size read off the prices' decimals; one error line per bad input
(SYS-001 data in, SYS-009 several assets, SYS-011/SYS-018 bad input is a message)."""

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import anyio
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lts.backtest.data import MarketData, open_market_data
from lts.domain.market import Bar
from lts.engine.clock import ReplayClock
from lts.errors import DataError
from lts.plugins.pipeline.replay import ReplayFeed

HEADER = "ts,open,high,low,close,volume"
T0 = 1_704_153_600  # 2024-01-02 00:00:00 UTC, epoch seconds
NS = 10**9


def write(path: Path, rows: Sequence[str], header: str = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join([header, *rows]) + "\n").encode())
    return path


def flat(t: int, price: str = "100", volume: int = 1) -> str:
    """A bar at T0 + t seconds with every price ``price``."""
    return f"{T0 + t},{price},{price},{price},{price},{volume}"


def stream(data: MarketData, batch: int = 4096) -> list[tuple[int, str]]:
    """(seconds after T0, symbol) of every bar, in the order the data gives them."""
    return [(b.ts_event // NS - T0, b.symbol) for batch_ in data.batches(batch) for b in batch_]


# -- several files, merged ------------------------------------------------------------------------

def test_three_files_merge_in_time_order_ties_by_symbol(tmp_path: Path) -> None:
    """Interleaved and equal times: time order, equal times in symbol order, in every batch
    size (the merge runs across batch and chunk boundaries)."""
    ccc = write(tmp_path / "CCC.csv", [flat(t) for t in (0, 2, 4, 5)])
    aaa = write(tmp_path / "AAA.csv", [flat(t) for t in (1, 2, 4)])
    bbb = write(tmp_path / "BBB.csv", [flat(t) for t in (0, 2, 3, 9)])
    expected = [(0, "BBB"), (0, "CCC"), (1, "AAA"), (2, "AAA"), (2, "BBB"), (2, "CCC"),
                (3, "BBB"), (4, "AAA"), (4, "CCC"), (5, "CCC"), (9, "BBB")]
    data = open_market_data([ccc, aaa, bbb])
    assert data.symbols == ["AAA", "BBB", "CCC"]
    for batch in (1, 2, 4096):
        assert stream(data, batch) == expected
    assert [len(b) for b in data.batches(4)] == [4, 4, 3]
    assert data.bar_count() == 11
    assert data.bar_count("CCC") == 4
    assert data.first_ts == T0 * NS


def test_merged_bars_are_the_files_bars(tmp_path: Path) -> None:
    aaa = write(tmp_path / "AAA.csv", ["1704153600,10,11,9,10.5,100"])
    bbb = write(tmp_path / "BBB.csv", ["1704153600,20,21,19,20.5,200"])
    bars = [b for batch in open_market_data([bbb, aaa]).batches() for b in batch]
    assert bars == [Bar("AAA", T0 * NS, 10.0, 11.0, 9.0, 10.5, 100.0),
                    Bar("BBB", T0 * NS, 20.0, 21.0, 19.0, 20.5, 200.0)]


def test_a_long_merge_across_many_chunks(tmp_path: Path) -> None:
    """Two files of 20,000 bars, one every 2 s and one every 3 s: every bar, in time order."""
    two = write(tmp_path / "TWO.csv", [flat(2 * i) for i in range(20_000)])
    three = write(tmp_path / "THREE.csv", [flat(3 * i) for i in range(20_000)])
    got = stream(open_market_data([two, three]), batch=1000)
    assert len(got) == 40_000
    assert got == sorted(got)


def test_symbols_from_names_the_option_or_symbol_equals_path(tmp_path: Path) -> None:
    plain = write(tmp_path / "bars.csv", [flat(0)])
    assert open_market_data([plain]).symbols == ["bars"]
    assert open_market_data([plain], "EURUSD").symbols == ["EURUSD"]
    assert open_market_data([f"GOOG={plain}"]).symbols == ["GOOG"]
    other = write(tmp_path / "x" / "y.csv", [flat(0)])
    data = open_market_data([f"GOOG={plain}", f"MSFT={other}"])
    assert stream(data) == [(0, "GOOG"), (0, "MSFT")]


def test_a_directory_is_one_symbol_per_file(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    write(folder / "ETHUSDT.csv", [flat(1), flat(2)])
    write(folder / "BTCUSDT.csv", [flat(0), flat(2)])
    pq.write_table(pa.table({"t": [T0 + 1], "open": [5.0], "high": [5.0], "low": [5.0],
                             "close": [5.0], "volume": [1.0]}), folder / "SOLUSDT.parquet")
    (folder / "README.txt").write_text("not data")
    (folder / "sub").mkdir()
    write(folder / "sub" / "XRPUSDT.csv", [flat(0)])  # not below: only the directory's own
    data = open_market_data([folder])
    assert data.symbols == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert stream(data) == [(0, "BTCUSDT"), (1, "ETHUSDT"), (1, "SOLUSDT"), (2, "BTCUSDT"),
                            (2, "ETHUSDT")]


# -- the long format ------------------------------------------------------------------------------

LONG = "ts,symbol,open,high,low,close,volume"


def long_row(t: int, symbol: str, price: str = "100") -> str:
    return f"{T0 + t},{symbol},{price},{price},{price},{price},1"


def test_a_long_format_file_keeps_its_own_order(tmp_path: Path) -> None:
    path = write(tmp_path / "all.csv", [long_row(0, "ZZZ"), long_row(0, "AAA"),
                                        long_row(1, "AAA"), long_row(2, "MMM"),
                                        long_row(2, "ZZZ"), long_row(2, "AAA")], LONG)
    data = open_market_data([path])
    assert data.symbols == ["AAA", "MMM", "ZZZ"]
    assert stream(data, batch=2) == [(0, "ZZZ"), (0, "AAA"), (1, "AAA"), (2, "MMM"),
                                     (2, "ZZZ"), (2, "AAA")]
    assert data.bar_count("AAA") == 3
    only = open_market_data([path], "ZZZ")
    assert only.symbols == ["ZZZ"]
    assert stream(only) == [(0, "ZZZ"), (2, "ZZZ")]


def test_a_long_format_file_beside_plain_files(tmp_path: Path) -> None:
    long = write(tmp_path / "pairs.csv", [long_row(0, "EURUSD", "1.1"),
                                          long_row(2, "GBPUSD", "1.3")], LONG)
    plain = write(tmp_path / "AUDUSD.csv", [flat(1, "0.7"), flat(2, "0.7")])
    data = open_market_data([long, plain])
    assert data.symbols == ["AUDUSD", "EURUSD", "GBPUSD"]
    assert stream(data) == [(0, "EURUSD"), (1, "AUDUSD"), (2, "AUDUSD"), (2, "GBPUSD")]


def test_long_format_symbols_share_one_string(tmp_path: Path) -> None:
    path = write(tmp_path / "all.csv", [long_row(t, s) for t in range(3) for s in "AB"], LONG)
    bars = [b for batch in open_market_data([path]).batches() for b in batch]
    assert len({id(b.symbol) for b in bars if b.symbol == "A"}) == 1


@pytest.mark.parametrize(("rows", "message"), [
    ([long_row(0, "A"), long_row(1, "B"), long_row(1, "A"), long_row(1, "A")],
     "timestamp column 'ts': duplicate timestamp of A in line 5"),
    ([long_row(0, "A"), long_row(2, "B"), long_row(1, "A")],
     "timestamp column 'ts': unsorted timestamp (the rows of all symbols must be in time "
     "order) in line 4"),
    ([long_row(0, "A"), "1704153601,,1,1,1,1,1"], "column 'symbol': empty value in line 3"),
], ids=["duplicate-of-a-symbol", "unsorted", "no-symbol"])
def test_long_format_order_is_checked(tmp_path: Path, rows: list[str], message: str) -> None:
    path = write(tmp_path / "all.csv", rows, LONG)
    with pytest.raises(DataError) as err:
        open_market_data([path])
    assert str(err.value) == f"{path}: {message}"


# -- one error line per bad input -----------------------------------------------------------------

def test_an_unknown_symbol_of_a_long_file(tmp_path: Path) -> None:
    path = write(tmp_path / "all.csv", [long_row(0, "B"), long_row(0, "A")], LONG)
    with pytest.raises(DataError) as err:
        open_market_data([path], "C")
    assert str(err.value) == f"{path}: no rows of symbol C (its symbols: A, B)"
    data = open_market_data([path])
    with pytest.raises(DataError) as err:
        data.tick_size("C")
    assert str(err.value) == "C: no such symbol in the market data (it has A, B)"


def test_a_symbol_twice(tmp_path: Path) -> None:
    first = write(tmp_path / "a" / "BTC.csv", [flat(0)])
    second = write(tmp_path / "b" / "BTC.csv", [flat(1)])
    with pytest.raises(DataError) as err:
        open_market_data([first, second])
    assert str(err.value) == f"symbol BTC twice: in {first} and {second}"
    long = write(tmp_path / "all.csv", [long_row(0, "BTC"), long_row(0, "ETH")], LONG)
    with pytest.raises(DataError) as err:
        open_market_data([long, first])
    assert str(err.value) == f"symbol BTC twice: in {long} and {first}"


def test_an_empty_directory_and_no_source(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no data here")
    with pytest.raises(DataError) as err:
        open_market_data([tmp_path / "empty"])
    assert str(err.value) == f"{tmp_path / 'empty'}: no .csv, .parquet, .pq file in the directory"
    with pytest.raises(DataError) as err:
        open_market_data([])
    assert str(err.value) == "no market data: name a file or a directory of files"


def test_one_symbol_option_for_several_files(tmp_path: Path) -> None:
    a = write(tmp_path / "A.csv", [flat(0)])
    b = write(tmp_path / "B.csv", [flat(0)])
    with pytest.raises(DataError) as err:
        open_market_data([a, b], "X")
    assert str(err.value) == ("symbol X: it names the bars of one file, and there are 2 (each "
                              "file's symbol is its name, or write SYMBOL=PATH)")


def test_a_bad_file_among_good_ones_is_named_before_any_bar(tmp_path: Path) -> None:
    """The survey reads every row first: a bad row late in one file stops the backtest before
    its first bar, with the file and the line."""
    folder = tmp_path / "data"
    write(folder / "AAA.csv", [flat(t) for t in range(10)])
    bad = write(folder / "BBB.csv", [flat(t) for t in range(5)] + [f"{T0 + 5},1,1,1,x,1"])
    write(folder / "CCC.csv", [flat(t) for t in range(10)])
    with pytest.raises(DataError) as err:
        open_market_data([folder])
    assert str(err.value) == f"{bad}: column 'close': non-numeric value 'x' in line 7"
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError) as err:
        open_market_data([folder / "AAA.csv", missing])
    assert str(err.value) == f"{missing}: no such file"


# -- the tick size from the prices' decimals ------------------------------------------------------

@pytest.mark.parametrize(("prices", "tick"), [
    (["123.45", "123.4", "124", "123.50"], "0.01"),                # GOOG-like
    (["1.12345", "1.1234", "1.12", "1.10000"], "0.00001"),         # EURUSD-like
    (["0.0000123", "0.0000124", "0.000012"], "0.0000001"),         # a small coin
    (["100", "101", "99"], "1"),
    (["100.30000000000001", "100.2"], "0.1"),                      # a float's noise
    (["1.5e-05", "2.25e-05"], "0.0000001"),
], ids=["goog", "eurusd", "coin", "whole", "float-noise", "exponent"])
def test_tick_size_from_the_csv_text(tmp_path: Path, prices: list[str], tick: str) -> None:
    rows = [f"{T0 + 60 * i},{p},{p},{p},{p},1" for i, p in enumerate(prices)]
    data = open_market_data([write(tmp_path / "SYM.csv", rows)])
    assert data.tick_size("SYM") == Decimal(tick)
    assert str(data.tick_size("SYM")) == tick or f"{data.tick_size('SYM'):f}" == tick
    assert data.describe("SYM") == (f"SYM: tick size {tick} (inferred from the data's "
                                    "decimals; set --tick-size to override)")


def test_tick_size_from_parquet_floats(tmp_path: Path) -> None:
    """Floats are read in their shortest form: 0.1 + 0.2 is 0.3, not 0.30000000000000004."""
    path = tmp_path / "COIN.parquet"
    pq.write_table(pa.table({"t": [T0, T0 + 60, T0 + 120],
                             "open": [0.1 + 0.2, 0.0000123, 0.5],
                             "high": [0.1 + 0.2, 0.0000123, 0.5],
                             "low": [0.1 + 0.2, 0.0000123, 0.5],
                             "close": [0.1 + 0.2, 0.0000123, 0.5], "volume": [1, 2, 3]}), path)
    assert open_market_data([path]).tick_size("COIN") == Decimal("0.0000001")
    pq.write_table(pa.table({"t": [T0, T0 + 60], "open": [0.1 + 0.2, 1.25],
                             "high": [0.1 + 0.2, 1.25], "low": [0.1 + 0.2, 1.25],
                             "close": [0.1 + 0.2, 1.25], "volume": [1, 2]}), path)
    assert open_market_data([path]).tick_size("COIN") == Decimal("0.01")


def test_tick_size_reads_the_first_10000_rows_of_each_symbol(tmp_path: Path) -> None:
    rows = [flat(i, "1.25") for i in range(10_000)] + [flat(10_000, "1.12345")]
    data = open_market_data([write(tmp_path / "A.csv", rows)])
    assert data.tick_size("A") == Decimal("0.01")
    rows = [flat(i, "1.25") for i in range(9_999)] + [flat(9_999, "1.12345")]
    data = open_market_data([write(tmp_path / "A.csv", rows)])
    assert data.tick_size("A") == Decimal("0.00001")


def test_tick_size_per_symbol_of_a_long_file_and_given(tmp_path: Path) -> None:
    path = write(tmp_path / "all.csv", [long_row(0, "GOOG", "123.45"),
                                        long_row(0, "EURUSD", "1.12345"),
                                        long_row(1, "GOOG", "123.4")], LONG)
    data = open_market_data([path])
    assert (data.tick_size("GOOG"), data.tick_size("EURUSD")) == (Decimal("0.01"),
                                                                  Decimal("0.00001"))
    given = open_market_data([path], tick_size=Decimal("0.5"))
    assert given.tick_size("EURUSD") == Decimal("0.5")
    assert given.describe("EURUSD") == "EURUSD: tick size 0.5 (set by --tick-size)"


# -- into the engine's feed -----------------------------------------------------------------------

@pytest.mark.anyio
async def test_the_replay_feed_streams_the_merged_data(tmp_path: Path) -> None:
    aaa = write(tmp_path / "AAA.csv", [flat(2 * i) for i in range(5_000)])
    bbb = write(tmp_path / "BBB.csv", [flat(2 * i + 1) for i in range(5_000)])
    data = open_market_data([aaa, bbb])
    feed = ReplayFeed(stream=data.batches(batch=512))
    got: list[list[Bar]] = []
    with anyio.fail_after(60):
        async for batch in feed.bars("*", ReplayClock(T0 * NS)):
            got.append(list(batch))
    bars = [b for batch in got for b in batch]
    assert max(len(b) for b in got) == 512
    assert [(b.ts_event // NS - T0, b.symbol) for b in bars] == [
        (t, "AAA" if t % 2 == 0 else "BBB") for t in range(10_000)]
    assert feed.bars_sent == 10_000


@pytest.mark.anyio
async def test_the_replay_feed_streams_its_path_and_reports_a_bad_row(tmp_path: Path) -> None:
    path = write(tmp_path / "bars.csv", [flat(i) for i in range(10)] + [f"{T0 + 10},1,x,1,1,1"])
    feed = ReplayFeed(path=str(path), batch=4)
    got: list[Bar] = []

    async def drain() -> None:
        async for batch in feed.bars("X", ReplayClock(T0 * NS)):
            got.extend(batch)

    with anyio.fail_after(60), pytest.raises(DataError) as err:
        await drain()
    assert str(err.value) == f"{path}: column 'high': non-numeric value 'x' in line 12"
    assert got == []  # the bad row's chunk is checked before any of its bars leave


def test_tick_size_from_parquet_decimals(tmp_path: Path) -> None:
    path = tmp_path / "DEC.parquet"
    prices = pa.array([Decimal("1.2340"), Decimal("1.2300")], pa.decimal128(10, 4))
    pq.write_table(pa.table({"t": [T0, T0 + 60], "open": prices, "high": prices, "low": prices,
                             "close": prices, "volume": [1, 2]}), path)
    data = open_market_data([path])
    assert data.tick_size("DEC") == Decimal("0.001")
    assert [b.close for batch in data.batches() for b in batch] == [1.234, 1.23]
