"""Reading a stored tabular version with several Ray tasks and staging it on the nodes' local disks as Arrow files.

Ray Data reads one file with one read task, so a large file is parsed on one core; here the file is cut into pieces
and each piece is read by its own task:

- CSV: byte ranges on line boundaries. The column types are inferred once, from the file's first block as Ray
  Data's reader does (pyarrow's streaming reader, 1 MiB blocks, missing text as null), and given to every range, so
  all parts have one schema. A cut inside a quoted value (text with line breaks) is detected and refused.
- JSON lines: byte ranges on line boundaries (a JSON text holds no raw line break, so every cut is safe), read with
  the column types the upload recorded for the whole file; columns mixing numbers and text are read in Python.
- Parquet: runs of row groups.

Each task writes its rows to uncompressed Arrow IPC files in a scratch directory on its node (parts of at most
PART_ROWS rows, so later passes have work for every core) and returns only a description of them (rows, missing
values per column). Every later pass memory-maps those files, on the node that holds them, instead of keeping the
whole input in Ray's object store: the object store then holds only the small partial results and the transformed
groups in flight, and the staged input is plain page cache that the kernel can drop and read back. The scratch
directories are removed when the run ends.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.fs
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from app.core.config import Settings
from app.core.errors import AipError
from app.db.models import DatasetVersion
from app.services.data import data_io, formats
from app.services.data.pipeline_ops import PipelineError

RANGE_BYTES = 16 << 20  # text bytes a task parses: about GROUP_ROWS rows of a narrow table, a bounded task
MIN_RANGE_BYTES = 1 << 20
PART_ROWS = 250_000  # rows of one staged file at most
STAGED_FORMATS = ("csv", "jsonl", "parquet")
SAMPLE_ROWS = 1_000
_SCAN = 1 << 16  # bytes read at a time while looking for the end of a line


@dataclass
class StagedPart:
    """One range's rows, staged as an Arrow IPC file on a node."""

    node: str
    path: str
    rows: int
    nulls: dict[str, int] = field(default_factory=dict)


@dataclass
class _Range:
    """What a staging task returns: its parts (none where its piece did not parse, with the reason), the first
    rows (first piece only) and, for CSV, the number of quote characters in its bytes."""

    parts: list[StagedPart]
    head: pa.Table | None
    quotes: int = 0
    error: str | None = None


class NotStaged(Exception):
    """The file cannot be cut into pieces: it is for a reader that reads it from the start."""


class SplitInsideQuotes(NotStaged):
    """A range starts inside a quoted value (text with line breaks): the file cannot be cut on line ends."""


@dataclass
class StagedInput:
    """The staged parts in file order, the schema they share and the first rows (for sampling)."""

    parts: list[StagedPart]
    schema: pa.Schema
    head: pa.Table


@contextmanager
def staged_input(settings: Settings, version: DatasetVersion, cpus: int) -> Iterator[StagedInput]:
    """Reads the version (one of STAGED_FORMATS) with one task per piece and stages it; removes the staged files
    on exit. Raises SplitInsideQuotes where a CSV cut fell inside a quoted value (such a file is for a reader that
    reads it from the start)."""
    path, filesystem = data_io.source(settings, version.storage_key)
    filesystem = filesystem or pyarrow.fs.LocalFileSystem()
    scratch = f"aip-stage-{uuid.uuid4().hex}"
    if version.format == "parquet":
        schema, pending = _parquet_tasks(filesystem, path, scratch, cpus)
        quotes = 0
    else:
        size = filesystem.get_file_info(path).size
        if version.format == "csv":
            header, schema = _header_and_schema(filesystem, path)
            quotes = header.count(b'"')
        else:
            header, schema, quotes = b"", _json_schema(version.columns), 0
        task = ray.put((version.format, filesystem, path, len(header), schema, scratch, version.columns, PART_ROWS))
        ranges = _ranges(len(header), size, cpus)
        pending = [_stage_range.remote(task, index, start, end) for index, (start, end) in enumerate(ranges)]
    nodes: set[str] | None = None  # None: a task failed, so any node may hold a part
    try:
        results: list[_Range] = ray.get(pending)
        nodes = {p.node for r in results for p in r.parts}
        _check(results, quotes)
        yield StagedInput([p for r in results for p in r.parts], schema, results[0].head)
    finally:
        ray.wait(pending, num_returns=len(pending))  # every task done before the clean-up
        _remove(scratch, nodes if nodes is not None else _alive_nodes())


def _check(results: list[_Range], quotes: int) -> None:
    """Every range starts outside quotes (an even count of quote characters before it: a doubled quote inside a
    value counts twice), and then every range parsed."""
    for result in results:
        if quotes % 2:
            raise SplitInsideQuotes
        quotes += result.quotes
    errors = [r.error for r in results if r.error]
    if errors:
        raise PipelineError(errors[0])


def _json_schema(columns: list[dict[str, Any]]) -> pa.Schema:
    """The types the upload recorded for the whole file (first-block inference could miss a later float)."""
    types = [(c["name"], formats.arrow_type(c["dtype"])) for c in columns]
    unknown = [name for name, kind in types if kind is None]
    if unknown:
        raise NotStaged(f"columns {unknown} are nested")
    return pa.schema(types)


def _parquet_tasks(
    filesystem: pyarrow.fs.FileSystem, path: str, scratch: str, cpus: int
) -> tuple[pa.Schema, list[ray.ObjectRef]]:
    """Runs of consecutive row groups, at least two per CPU where the file has the groups, each read by a task."""
    with filesystem.open_input_file(path) as handle:
        parquet = pq.ParquetFile(handle)
        schema, sizes = (
            parquet.schema_arrow,
            [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)],
        )
    target = max(1, min(PART_ROWS, -(-sum(sizes) // (2 * cpus))))
    runs: list[list[int]] = []
    rows = 0
    for index, size in enumerate(sizes):
        if not runs or (rows and rows + size > target):
            runs.append([])
            rows = 0
        runs[-1].append(index)
        rows += size
    task = ray.put((filesystem, path, schema, scratch, target))
    return schema, [_stage_row_groups.remote(task, index, run) for index, run in enumerate(runs)]


def _header_and_schema(filesystem: pyarrow.fs.FileSystem, path: str) -> tuple[bytes, pa.Schema]:
    """The header line and the column types Ray Data's reader infers from the file's first block."""
    with filesystem.open_input_stream(path) as stream:
        try:
            reader = pa_csv.open_csv(stream, convert_options=_convert_options(None))
        except pa.ArrowInvalid as e:
            raise PipelineError(f"the CSV file does not parse: {e}") from None
        schema = reader.schema
    with filesystem.open_input_file(path) as handle:
        header = _until_line_end(handle, 0)
    return header, schema


def _ranges(start: int, size: int, cpus: int) -> list[tuple[int, int]]:
    """Byte ranges after the header: at least two per CPU where the file allows, each at most RANGE_BYTES."""
    body = max(0, size - start)
    step = max(MIN_RANGE_BYTES, min(RANGE_BYTES, -(-body // (2 * cpus))))
    bounds = list(range(start, size, step)) or [start]
    return [(a, min(a + step, size)) for a in bounds]


def _convert_options(schema: pa.Schema | None) -> pa_csv.ConvertOptions:
    types = {f.name: f.type for f in schema} if schema is not None else None
    return pa_csv.ConvertOptions(strings_can_be_null=True, column_types=types)


def _until_line_end(handle: pa.NativeFile, position: int) -> bytes:
    """The bytes from `position` up to and including the next newline (or to the end of the file)."""
    handle.seek(position)
    chunks = []
    while True:
        chunk = handle.read(_SCAN)
        cut = chunk.find(b"\n")
        if cut >= 0 or not chunk:
            chunks.append(chunk[: cut + 1] if cut >= 0 else chunk)
            return b"".join(chunks)
        chunks.append(chunk)


def _line_start(handle: pa.NativeFile, position: int, header_end: int) -> int:
    """The first line start at or after `position` (a line starts after a newline)."""
    if position <= header_end:
        return header_end
    return position - 1 + len(_until_line_end(handle, position - 1))


@ray.remote(num_cpus=1)
def _stage_range(task: tuple, index: int, start: int, end: int) -> _Range:
    """Parses the lines that start in [start, end) and writes them to Arrow files in this node's scratch dir."""
    fmt, filesystem, path, header_end, schema, scratch, columns, part_rows = task
    with filesystem.open_input_file(path) as handle:
        size = handle.size()
        begin = _line_start(handle, start, header_end)
        stop = _line_start(handle, end, header_end) if end < size else size
        handle.seek(begin)
        body = handle.read(max(0, stop - begin))
    quotes = body.count(b'"') if fmt == "csv" else 0
    try:
        table = _parse(fmt, body, schema, columns) if body.strip() else schema.empty_table()  # pyarrow wants rows
    except (pa.ArrowInvalid, AipError) as e:  # for CSV the driver first checks the range began outside quotes
        what = f"the {'CSV' if fmt == 'csv' else 'JSON lines'} file does not parse (bytes {begin} to {stop})"
        return _Range([], None, quotes, f"{what}: {e}")
    return _Range(_write_parts(table, schema, scratch, index, part_rows), _head(table, index), quotes)


def _parse(fmt: str, body: bytes, schema: pa.Schema, columns: list[dict[str, Any]]) -> pa.Table:
    if fmt == "csv":
        options = pa_csv.ReadOptions(use_threads=False, column_names=schema.names)
        return pa_csv.read_csv(pa.BufferReader(body), read_options=options, convert_options=_convert_options(schema))
    if formats.has_mixed_columns(columns):
        return formats.json_lines_table(body.splitlines(), columns)
    parse = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    return pa_json.read_json(
        pa.BufferReader(body), read_options=pa_json.ReadOptions(use_threads=False), parse_options=parse
    )


@ray.remote(num_cpus=1)
def _stage_row_groups(task: tuple, index: int, row_groups: list[int]) -> _Range:
    filesystem, path, schema, scratch, part_rows = task
    with filesystem.open_input_file(path) as handle:
        table = pq.ParquetFile(handle).read_row_groups(row_groups, use_threads=False)
    return _Range(_write_parts(table, schema, scratch, index, part_rows), _head(table, index))


def _head(table: pa.Table, index: int) -> pa.Table | None:
    return table.slice(0, SAMPLE_ROWS) if index == 0 else None  # the file's first rows, for sampling


def _write_parts(table: pa.Table, schema: pa.Schema, scratch: str, index: int, part_rows: int) -> list[StagedPart]:
    """`table` as Arrow files of at most `part_rows` rows in this node's scratch dir, named in file order."""
    directory = Path(tempfile.gettempdir()) / scratch
    directory.mkdir(exist_ok=True)
    table = table.cast(schema) if not table.schema.equals(schema) else table
    node = ray.get_runtime_context().get_node_id()
    parts = []
    for number, offset in enumerate(range(0, max(table.num_rows, 1), part_rows)):
        piece = table.slice(offset, part_rows)
        target = directory / f"{index:06d}-{number:04d}.arrow"
        with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            writer.write_table(piece)
        parts.append(
            StagedPart(node, str(target), piece.num_rows, {f.name: piece.column(f.name).null_count for f in schema})
        )
    return parts


def read_staged(path: str) -> pa.Table:
    """A staged part, memory-mapped (no copy: the pages are the file's page cache)."""
    return pa.ipc.open_file(pa.memory_map(path)).read_all()


def on_node(node: str) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node_id=node, soft=False)


def _alive_nodes() -> set[str]:
    return {n["NodeID"] for n in ray.nodes() if n.get("Alive")}


def _remove(scratch: str, nodes: set[str]) -> None:
    """Removes the scratch directory here and, by a task on each, on the other nodes."""
    _remove_scratch(scratch)
    here = ray.get_runtime_context().get_node_id()
    remote = ray.remote(_remove_scratch)
    done = [remote.options(scheduling_strategy=on_node(n)).remote(scratch) for n in nodes - {here}]
    if done:
        ray.wait(done, num_returns=len(done), timeout=60)


def _remove_scratch(scratch: str) -> None:
    shutil.rmtree(Path(tempfile.gettempdir()) / scratch, ignore_errors=True)
