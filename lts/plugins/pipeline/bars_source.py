"""A file of bars as a stream of raw column chunks: the first step of reading historical data.

:class:`BarsSource` opens one CSV or Parquet file, finds its columns (the timestamp is the first
column, named or not; ``open high low close volume`` and an optional ``symbol`` in any letter
case) and reads the rows in chunks of bounded size, never the whole file at once: a CSV a block
of CSV_BLOCK bytes at a time, cut at a line's end and parsed by pyarrow (every column kept as
the text written, so the checks can quote it and the tick inference can count its decimals), a
Parquet file PARQUET_ROWS rows at a time.

Where a problem sits is said the way the user can find it: ``line N`` is the CSV's physical line
(the header is line 1; blank lines count, as an editor counts them), ``row N`` the Parquet
file's data row. A CSV that pyarrow cannot tokenize is diagnosed here: a line that is not UTF-8
text, a line with another number of fields than the header. Checking the values is
:mod:`lts.plugins.pipeline.bars_checks`' job.
"""

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from lts.errors import DataError

__all__ = ["COLUMNS", "CSV_BLOCK", "PARQUET_ROWS", "PARQUET_SUFFIXES", "PRICE_COLUMNS",
           "SYMBOL_COLUMN", "BarsSource", "RawChunk"]

COLUMNS = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS = COLUMNS[:4]
SYMBOL_COLUMN = "symbol"
PARQUET_SUFFIXES = (".parquet", ".pq")

CSV_BLOCK = 1 << 18       # bytes of CSV per chunk (~6,500 one-minute bars)
PARQUET_ROWS = 32_768     # rows of Parquet per chunk
_HEADER_LIMIT = 1 << 20   # a first line longer than this is not a header


_SEPARATORS = {";": "';'", "\t": "tabs", "|": "'|'"}


def _found(names: list[str]) -> str:
    """The columns a header has, for a message about the ones it lacks, with a hint when they
    look separated by something other than commas (a spreadsheet's ``;`` export)."""
    shown = ", ".join(repr(n) for n in names[:12]) + (", ..." if len(names) > 12 else "")
    if len(shown) > 300:
        shown = shown[:300] + "..."
    text = f"found {len(names)} column(s): {shown}"
    for sep, called in _SEPARATORS.items():
        parts = {p.strip().lower() for name in names for p in name.split(sep)}
        if any(sep in name for name in names) and set(COLUMNS) <= parts:
            return f"{text} (separated by {called}? write the file with commas between columns)"
    return text


class RawChunk(NamedTuple):
    """Consecutive rows of a file, as read: ``start`` is the 0-based data row of the first."""

    start: int
    ts: pa.Array
    values: tuple[pa.Array, ...]  # open, high, low, close, volume
    symbols: pa.Array | None
    offset: int = 0            # CSV: where the chunk's text starts in the file (bytes)
    text: bytes | None = None  # CSV: the chunk's text (where a problem is gets read in it)


class BarsSource:
    """One CSV or Parquet file of bars: its columns found at once, its rows read in chunks."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such file")
        self.is_parquet = self.path.suffix.lower() in PARQUET_SUFFIXES
        names = self._parquet_names() if self.is_parquet else self._csv_header()
        #: the timestamp column's name as messages show it
        self.ts_name = names[0] or "column 1"
        self._names = names
        index: dict[str, int] = {}
        for i, name in enumerate(names[1:], 1):
            key = name.strip().lower()
            if key in (*COLUMNS, SYMBOL_COLUMN) and key in index:
                raise DataError(f"{self.path}: column {key!r} appears twice "
                                f"({names[index[key]]!r} and {name!r})")
            index.setdefault(key, i)
        missing = [c for c in COLUMNS if c not in index]
        if missing:
            raise DataError(f"{self.path}: missing column(s): {', '.join(missing)}; "
                            f"{_found(names)}")
        #: the columns read: the time, open high low close volume, the symbol if any
        self._wanted = [0, *(index[c] for c in COLUMNS)]
        if SYMBOL_COLUMN in index:
            self._wanted.append(index[SYMBOL_COLUMN])

    @property
    def has_symbols(self) -> bool:
        """Whether the file is in the long format: a ``symbol`` column names each row's."""
        return len(self._wanted) > 1 + len(COLUMNS)

    def error(self, raw: RawChunk, row: int, what: str, tail: str = "") -> DataError:
        """The one-line error for a problem in row ``row`` of a chunk."""
        return DataError(f"{self.path}: {what} in {self.where(raw, row)}{tail}")

    def where(self, raw: RawChunk, row: int) -> str:
        """``line N`` (CSV, physical) or ``row N`` (Parquet) of row ``row`` of a chunk."""
        if raw.text is None:
            return f"row {raw.start + row + 1}"
        return f"line {self._line_at(raw.offset) + _row_line(raw.text, row)}"

    def chunks(self) -> Iterator[RawChunk]:
        """The file's rows, chunk by chunk, in file order."""
        return self._parquet_chunks() if self.is_parquet else self._csv_chunks()

    # -- Parquet ----------------------------------------------------------------------------------

    def _parquet_file(self) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as exc:
            raise self._unreadable(exc) from None

    def _parquet_names(self) -> list[str]:
        names: list[str] = self._parquet_file().schema_arrow.names
        if not names:
            raise DataError(f"{self.path}: no columns")
        return names

    def _parquet_chunks(self) -> Iterator[RawChunk]:
        start = 0
        columns = [self._names[i] for i in self._wanted]
        try:
            for batch in self._parquet_file().iter_batches(batch_size=PARQUET_ROWS,
                                                           columns=columns):
                yield self._chunk(start, batch.columns)
                start += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise self._unreadable(exc) from None

    @staticmethod
    def _chunk(start: int, columns: list[pa.Array], offset: int = 0,
               text: bytes | None = None) -> RawChunk:
        return RawChunk(start, columns[0], tuple(columns[1:1 + len(COLUMNS)]),
                        columns[1 + len(COLUMNS)] if len(columns) > 1 + len(COLUMNS) else None,
                        offset, text)

    # -- CSV --------------------------------------------------------------------------------------

    def _csv_header(self) -> list[str]:
        with self.path.open("rb") as f:
            number = 0
            while line := f.readline(_HEADER_LIMIT + 1):
                number += 1
                if len(line) > _HEADER_LIMIT:
                    raise DataError(f"{self.path}: cannot read: line {number} is not a header "
                                    f"(over {_HEADER_LIMIT} bytes)")
                if line.strip(b"\r\n"):
                    text = self._utf8(line, number, 0, "utf-8-sig")
                    return next(csv.reader([text]))
        raise DataError(f"{self.path}: cannot read: the file is empty")

    def _utf8(self, raw: bytes, number: int, offset: int, codec: str = "utf-8") -> str:
        try:
            return raw.decode(codec)
        except UnicodeDecodeError as exc:
            byte = raw[exc.start]
            raise DataError(f"{self.path}: not UTF-8 text in line {number}: byte "
                            f"0x{byte:02x} at position {offset + exc.start + 1}; save the file "
                            "as UTF-8") from None

    def _csv_chunks(self) -> Iterator[RawChunk]:
        generated = [f"c{i}" for i in range(len(self._names))]  # header names may repeat
        read = pa_csv.ReadOptions(column_names=generated, use_threads=False)
        convert = pa_csv.ConvertOptions(
            column_types={generated[i]: pa.string() for i in self._wanted},
            include_columns=[generated[i] for i in self._wanted],
            # only an empty field is missing: "NaN" and "null" reach the checks as written
            null_values=[""], strings_can_be_null=True)
        start = 0
        for offset, block in self._blocks():
            try:
                table = pa_csv.read_csv(pa.py_buffer(block), read_options=read,
                                        convert_options=convert)
            except (pa.ArrowException, OSError) as exc:
                raise self._diagnosed(block, offset, exc) from None
            if not table.num_rows:
                continue
            # a block parses to one chunk per column (combine_chunks would copy it)
            columns = [column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
                       for column in table.columns]
            yield self._chunk(start, columns, offset, block)
            start += table.num_rows

    def _blocks(self) -> Iterator[tuple[int, bytes]]:
        """The data lines in blocks of about CSV_BLOCK bytes cut at line ends, each with its
        offset in the file (one block in memory at a time: pyarrow's own streaming reader
        measured 60-90 MiB of read-ahead on a 40-110 MB file)."""
        with self.path.open("rb") as f:
            for header in f:  # the first non-blank line
                if header.strip(b"\r\n"):
                    break
            offset = f.tell()
            while block := f.read(CSV_BLOCK):
                if not block.endswith(b"\n"):
                    block += f.readline()  # the block ends at a line's end
                yield offset, block
                offset += len(block)

    def _diagnosed(self, block: bytes, offset: int, exc: BaseException) -> DataError:
        """Why pyarrow could not tokenize a block, said with the line: a field that is not
        UTF-8 text, or a line with another number of fields than the header."""
        for index, line in enumerate(block.split(b"\n")):
            raw = line.rstrip(b"\r")
            if not raw:
                continue
            text = raw.decode("latin-1")  # 1 byte = 1 character: positions survive
            fields = next(csv.reader([text]))
            if len(fields) != len(self._names):
                return DataError(f"{self.path}: {len(fields)} field(s) in line "
                                 f"{self._line_at(offset) + index}, the header has "
                                 f"{len(self._names)}")
            for column in self._wanted:
                self._utf8(fields[column].encode("latin-1"), self._line_at(offset) + index,
                           text.find(fields[column]))
        return self._unreadable(exc)

    def _unreadable(self, exc: BaseException) -> DataError:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return DataError(f"{self.path}: cannot read: {first}")

    def _line_at(self, offset: int) -> int:
        """The physical line that starts at byte ``offset``: counted only when a problem is
        reported (the file's start read again)."""
        newlines = 0
        with self.path.open("rb") as f:
            while offset > 0:
                piece = f.read(min(offset, 1 << 20))
                if not piece:
                    break
                newlines += piece.count(b"\n")
                offset -= len(piece)
        return newlines + 1


def _row_line(text: bytes, row: int) -> int:
    """The line of a chunk's ``row`` within its text (0-based): pyarrow skips blank lines, an
    editor counts them."""
    if not (b"\n\n" in text or b"\n\r\n" in text or text.startswith((b"\n", b"\r\n"))):
        return row
    seen = -1
    for index, line in enumerate(text.split(b"\n")):
        if line.rstrip(b"\r"):
            seen += 1
            if seen == row:
                return index
    return row
