"""Reading a file of bars ahead on a thread (lts/plugins/pipeline/read_ahead.py): the same bars in
the same order, a bad line raised in its place with the same message, and a reader that stops
early stops the thread (SYS-009: a replay streams its data)."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lts.errors import DataError
from lts.plugins.pipeline.bars_file import BarsFile, load_bars
from lts.plugins.pipeline.read_ahead import read_ahead

from .test_bars_file import HEADER, minute_rows, write_csv


def _readers_alive() -> int:
    return sum(t.name == "lts-read-ahead" and t.is_alive() for t in threading.enumerate())


def _until_no_reader(within: float = 10.0) -> int:
    deadline = time.monotonic() + within
    while _readers_alive() and time.monotonic() < deadline:
        time.sleep(0.01)  # a poll under a deadline: the thread's end is not signalled
    return _readers_alive()


def test_read_ahead_gives_the_bars_in_file_order(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "\n".join([HEADER, *minute_rows(70_000)]) + "\n")  # many chunks
    ahead = [bar for batch in BarsFile(path, "AAA").batches(1000, ahead=True) for bar in batch]
    assert ahead == load_bars(path, "AAA")


def test_a_bad_line_is_raised_after_the_bars_before_it(tmp_path: Path) -> None:
    rows = minute_rows(60_000)
    rows[-1] = rows[-1].replace(",", ",nope", 1)
    path = write_csv(tmp_path, "\n".join([HEADER, *rows]) + "\n")
    with pytest.raises(DataError) as inline:
        load_bars(path, "AAA")
    got = []
    with pytest.raises(DataError) as ahead:
        got.extend(bar for b in BarsFile(path, "AAA").batches(4096, ahead=True) for bar in b)
    assert str(ahead.value) == str(inline.value)
    assert "line 60001" in str(ahead.value)
    assert len(got) >= 4096  # the chunks before the bad one arrived first
    assert _until_no_reader() == 0


def test_a_reader_that_stops_early_stops_the_thread() -> None:
    made: list[int] = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            made.append(n)
            yield n
            n += 1

    items = read_ahead(endless(), depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert _until_no_reader() == 0
    assert len(made) <= 3 + 2 + 1  # never more than ``depth`` beyond what was taken (+1 held)
