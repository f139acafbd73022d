"""Dataset file formats: which names are accepted, how a file is checked and read.

Tabular: CSV, JSON lines, Parquet. Image classification: a zip of class folders (`cat/1.png`, `dog/2.jpg`,
optionally under one top-level folder). Checking streams the file with pyarrow where it can, so a large upload is
not loaded into memory just to count its rows.
"""

from __future__ import annotations

import io
import json
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from app.contracts.formats import IMAGES, TABULAR
from app.core.config import get_settings
from app.core.errors import invalid
from app.services import archives
from app.services.data import text_encoding

EXTENSIONS = {
    "csv": "csv",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "parquet": "parquet",
    "pq": "parquet",
    "zip": IMAGES,
}
IMAGE_EXTENSIONS = {"png", "jpg", "jpeg", "gif", "bmp", "webp"}
_STREAM_BLOCKS = 4  # blocks queued for a streaming check: bounds its memory to a few reads
_MIXED = b"aip.mixed"  # Arrow field metadata: the column mixes JSON types

Inspected = tuple[int, list[dict[str, Any]], dict[str, Any] | None]


def safe_file_name(file_name: str) -> str:
    name = PurePosixPath(file_name.replace("\\", "/")).name
    if (
        not name
        or name in (".", "..")
        or name != file_name
        or len(name) > 255
        or any(ord(c) < 32 for c in name)
        or name.startswith(".")
    ):
        raise invalid(f"File name {file_name!r} is not allowed: send a plain name like 'data.csv', no paths.")
    return name


def detect(file_name: str) -> str:
    ext = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    if ext not in EXTENSIONS:
        raise invalid(
            f"Unsupported file type {ext or '(none)'!r}: upload one of "
            f"{', '.join('.' + e for e in EXTENSIONS)} (.zip: image classification, one folder per class)."
        )
    return EXTENSIONS[ext]


def inspect(path: Path, fmt: str, limits: archives.ZipLimits | None = None) -> Inspected:
    """Rows, columns (name and type) and, for image sets, the profile; raises a 4xx naming what is wrong.
    `limits`: an image zip's caps (default: from the settings)."""
    if path.stat().st_size == 0:
        raise invalid("The file is empty.")
    if fmt == IMAGES:
        return _inspect_zip(path, limits or archives.image_limits(get_settings()))
    if fmt in text_encoding.TEXT_FORMATS:
        text_encoding.check_file(path)
    if fmt == "parquet":
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise invalid(f"The file is not readable Parquet: {e}.") from e
        rows, schema = parquet.metadata.num_rows, parquet.schema_arrow
    else:
        rows, schema = _count(path, fmt) or _frame_count(path, fmt)
    return _described(fmt, rows, schema)


def _described(fmt: str, rows: int, schema: pa.Schema) -> Inspected:
    if rows == 0:
        raise invalid(f"The {fmt.upper()} file has no rows.")
    columns = [{"name": f.name, "dtype": _dtype_name(f.type)} for f in schema]
    for column, f in zip(columns, schema, strict=True):
        if f.metadata and f.metadata.get(_MIXED):
            column["mixed"] = True
    return rows, columns, None


def _dtype_name(arrow_type: pa.DataType) -> str:
    # Pandas' names, as the training templates and the profile use them.
    try:
        return np.dtype(arrow_type.to_pandas_dtype()).name
    except (NotImplementedError, TypeError):
        return str(arrow_type)


def _count(source: Path | BinaryIO | io.RawIOBase, fmt: str) -> tuple[int, pa.Schema] | None:
    """Rows and schema of a CSV or JSON lines file, read by pyarrow (a path, or a stream read once in order);
    None when a column's type changes along the file (e.g. numbers, then text), which only pandas widens."""
    try:
        if fmt == "csv":
            reader = pa_csv.open_csv(source, read_options=pa_csv.ReadOptions(block_size=16 << 20))
            return sum(batch.num_rows for batch in reader), reader.schema
        table = pa_json.read_json(source)
        return table.num_rows, table.schema
    except pa.ArrowInvalid as e:
        if fmt == "csv" and "conversion error" not in str(e).lower():
            raise invalid(f"The file is not a readable CSV: {e}. Send comma-separated text with a header row.") from e
        return None


def _frame_count(path: Path, fmt: str) -> tuple[int, pa.Schema]:
    frame = read_frame(path, fmt)
    return len(frame), pa.schema([_field(str(name), frame[name]) for name in frame.columns])


def _field(name: str, column: pd.Series) -> pa.Field:
    try:
        return pa.field(name, pa.Schema.from_pandas(column.to_frame(), preserve_index=False).field(0).type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Mixed values (e.g. numbers, then text) stay objects in pandas: recorded as text, marked mixed (readers
        # then parse such JSON lines in Python, see `json_lines_table`), and a quality check's type consistency
        # counts the values that do not fit.
        return pa.field(name, pa.string(), metadata={_MIXED: b"1"})


def has_mixed_columns(columns: list[dict[str, Any]]) -> bool:
    """Whether a version's recorded columns include one that mixes JSON types (numbers and text), which pyarrow's
    JSON reader refuses: such JSON lines are read with `json_lines_table`."""
    return any(c.get("mixed") for c in columns)


def arrow_type(dtype: str) -> pa.DataType | None:
    """The Arrow type of a recorded (pandas) dtype name; None for nested or exotic ones."""
    if dtype == "object":
        return pa.string()
    try:
        return pa.from_numpy_dtype(np.dtype(dtype))
    except (TypeError, ValueError, NotImplementedError, pa.ArrowNotImplementedError):
        return None


def json_lines_table(lines: Iterable[str | bytes], columns: list[dict[str, Any]], first_line: int = 1) -> pa.Table:
    """JSON lines parsed in Python into the recorded columns: text columns take every value as its JSON text
    (12 -> "12", so a column mixing numbers and text reads as text), the others their recorded type; a missing
    key or null is null. `first_line` numbers the lines in errors."""
    values: dict[str, list[Any]] = {c["name"]: [] for c in columns}
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            raise invalid(f"Line {number} is not JSON ({e}); send one JSON object per line.") from e
        if not isinstance(record, dict):
            raise invalid(f'Line {number} is not a JSON object; send one object per line, like {{"a": 1}}.')
        for name, column in values.items():
            column.append(record.get(name))
    arrays = {}
    for c in columns:
        kind = arrow_type(c["dtype"])
        cells = values[c["name"]]
        if kind == pa.string():
            cells = [v if v is None or isinstance(v, str) else json.dumps(v) for v in cells]
        try:
            arrays[c["name"]] = pa.array(cells, type=kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as e:
            raise invalid(f"Column {c['name']!r} holds a value that is not {c['dtype']}: {e}.") from e
    return pa.table(arrays)


def json_lines_batches(path: Path, columns: list[dict[str, Any]], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """A JSON lines file as record batches of `json_lines_table` (see `has_mixed_columns`)."""
    with path.open("rb") as f:
        first = 1
        while lines := [line for _, line in zip(range(batch_rows), f, strict=False)]:
            yield from json_lines_table(lines, columns, first_line=first).to_batches()
            first += len(lines)


class StreamCheck:
    """Checks a CSV or JSON lines file while its bytes arrive in order (e.g. as a download is hashed), in a
    thread of its own, so the check costs no extra pass over the file: pyarrow parses without holding the GIL.
    Other formats, and files only pandas can type, are checked from the finished file by `result`."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self._blocks: queue.Queue[bytes] = queue.Queue(maxsize=_STREAM_BLOCKS)
        self._closed = threading.Event()  # no more bytes will come: readers end once the queue is drained
        self._done = threading.Event()
        self._counted: tuple[int, pa.Schema] | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._utf8 = text_encoding.Utf8Check()
        if fmt in text_encoding.TEXT_FORMATS:
            self._thread = threading.Thread(target=self._run, name="aip-format-check", daemon=True)
            self._thread.start()

    def feed(self, data: bytes) -> None:
        """The next bytes of the file; blocks while the parser is a few blocks behind."""
        if data and self._thread is not None:
            self._utf8.feed(data)
            if self._utf8.bad_offset is None:  # past a bad byte the file is refused anyway: no need to parse on
                self._put(data)

    def _put(self, block: bytes) -> None:
        while self._thread is not None and not self._done.is_set():  # a parser that stopped takes no more
            try:
                self._blocks.put(block, timeout=0.1)
                return
            except queue.Full:
                continue

    def result(self, path: Path) -> Inspected:
        """The check's outcome for the whole file, now at `path` (what `inspect(path, fmt)` returns)."""
        if self._thread is None:
            return inspect(path, self.fmt)
        self.close()
        if path.stat().st_size == 0:
            raise invalid("The file is empty.")
        self._utf8.finish(path)
        if self._error is not None:
            raise self._error
        rows, schema = self._counted or _frame_count(path, self.fmt)
        return _described(self.fmt, rows, schema)

    def close(self) -> None:
        """Ends the stream (the file is complete, or its read failed) and waits for the parser to stop."""
        self._closed.set()
        self._put(b"")
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> StreamCheck:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _run(self) -> None:
        try:
            self._counted = _count(_QueueReader(self._blocks, self._closed), self.fmt)
        except BaseException as e:  # raised by `result`, in the caller's thread
            self._error = e
        finally:
            self._done.set()


class _QueueReader(io.RawIOBase):
    """A read-once stream over blocks from a queue (an empty block ends it, and so does `closed` once the queue
    is drained). Reads are filled to the size asked for, as from a file: pyarrow infers column types from its
    first read. pyarrow may read ahead on a thread of its own, still waiting here after its parser gave up on bad
    input: `closed` ends that wait (else the thread, and the process's exit, would wait forever)."""

    def __init__(self, blocks: queue.Queue[bytes], closed: threading.Event) -> None:
        self._blocks = blocks
        self._closed = closed
        self._rest = memoryview(b"")
        self._ended = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        pieces, wanted = [], size
        while wanted != 0 and not (self._ended and not self._rest):
            if not self._rest:
                self._rest = memoryview(self._next_block())
                self._ended = not self._rest
                continue
            take = len(self._rest) if wanted < 0 else min(wanted, len(self._rest))
            pieces.append(self._rest[:take])
            self._rest = self._rest[take:]
            wanted -= take if wanted > 0 else 0
        return b"".join(pieces)

    def _next_block(self) -> bytes:
        while True:
            try:
                return self._blocks.get(timeout=0.1)
            except queue.Empty:
                if self._closed.is_set():
                    return b""


def read_frame(path: Path, fmt: str) -> pd.DataFrame:
    """The whole file as a pandas frame (tabular formats)."""
    if fmt not in TABULAR:
        raise invalid(f"A {fmt} dataset is not tabular; use a CSV, JSON lines or Parquet version.")
    try:
        if fmt == "csv":
            frame = pd.read_csv(path)
        elif fmt == "jsonl":
            frame = pd.read_json(path, lines=True)
        else:
            frame = pd.read_parquet(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, pa.ArrowInvalid) as e:
        raise invalid(f"The file is not a readable {fmt.upper()}: {e}.") from e
    if frame.empty:
        raise invalid(f"The {fmt.upper()} file has no rows.")
    return frame


def image_entries(names: list[str]) -> list[tuple[str, str]]:
    """(member name, class) of every image in a class-folder zip; refuses paths that could escape a folder."""
    files = [n for n in names if not n.endswith("/") and not n.startswith("__MACOSX/")]
    for name in files:
        parts = PurePosixPath(name).parts
        if name.startswith("/") or "\\" in name or ".." in parts:
            raise invalid(f"The zip member {name!r} has an unsafe path; use class folders like 'cat/1.png'.")
    roots = {PurePosixPath(n).parts[0] for n in files}
    strip = 1 if len(roots) == 1 and all(len(PurePosixPath(n).parts) == 3 for n in files) else 0
    entries = []
    for name in files:
        parts = PurePosixPath(name).parts[strip:]
        if len(parts) != 2:
            raise invalid(f"The zip member {name!r} is not in a class folder; lay it out as 'CLASS/IMAGE.png'.")
        if parts[1].rsplit(".", 1)[-1].lower() not in IMAGE_EXTENSIONS:
            raise invalid(f"The zip member {name!r} is not an image ({', '.join(sorted(IMAGE_EXTENSIONS))}).")
        entries.append((name, parts[0]))
    return entries


def _inspect_zip(path: Path, limits: archives.ZipLimits) -> tuple[int, list[dict[str, str]], dict[str, Any]]:
    with path.open("rb") as f, archives.open_checked(f, limits) as archive:
        entries = image_entries(archive.namelist())
    if not entries:
        raise invalid("The zip holds no images; put them in one folder per class, e.g. 'cat/1.png'.")
    classes: dict[str, int] = {}
    for _, label in entries:
        classes[label] = classes.get(label, 0) + 1
    profile = {"rows": len(entries), "kind": "image_classification", "classes": dict(sorted(classes.items()))}
    return len(entries), [{"name": "image", "dtype": "binary"}, {"name": "label", "dtype": "object"}], profile
