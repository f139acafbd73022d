"""Reading a stored CSV version with several Ray tasks and staging it on the nodes' local disks as Arrow files.

Ray Data parses one CSV file with one read task, so a large file is read on one core; here the file is cut into
byte ranges on line boundaries and each range is parsed by its own task. The column types are inferred once, from
the file's first block as Ray Data's reader does (pyarrow's streaming reader, 1 MiB blocks, missing text as null),
and given to every range, so all parts have one schema.

Each task writes its rows to an uncompressed Arrow IPC file in a scratch directory on its node and returns only a
description of it (rows, missing values per column). Every later pass memory-maps those files, on the node that
holds them, instead of keeping the whole input in Ray's object store: the object store then holds only the small
partial results and the transformed groups in flight, and the staged input is plain page cache that the kernel can
drop and read back. The scratch directories are removed when the run ends.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.fs
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from app.core.config import Settings
from app.db.models import DatasetVersion
from app.services import data_io
from app.services.pipeline_transform import PipelineError

RANGE_BYTES = 16 << 20  # CSV bytes a task parses: about GROUP_ROWS rows of a narrow table, a bounded task
MIN_RANGE_BYTES = 1 << 20
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
    """What a range task returns: its part (None where the range did not parse, with the reason), the first rows
    (first range only) and the number of quote characters in its bytes."""

    part: StagedPart | None
    head: pa.Table | None
    quotes: int
    error: str | None = None


class SplitInsideQuotes(Exception):
    """A range starts inside a quoted value (text with line breaks): the file cannot be cut on line ends."""


@dataclass
class StagedInput:
    """The staged parts in file order, the schema they share and the first rows (for sampling)."""

    parts: list[StagedPart]
    schema: pa.Schema
    head: pa.Table


@contextmanager
def staged_csv(settings: Settings, version: DatasetVersion, cpus: int) -> Iterator[StagedInput]:
    """Parses the version's CSV with one task per byte range and stages it; removes the staged files on exit.
    Raises SplitInsideQuotes where a cut fell inside a quoted value (such a file is for a reader that reads it
    from the start)."""
    path, filesystem = data_io.source(settings, version.storage_key)
    filesystem = filesystem or pyarrow.fs.LocalFileSystem()
    size = filesystem.get_file_info(path).size
    header, schema = _header_and_schema(filesystem, path)
    scratch = f"aip-stage-{uuid.uuid4().hex}"
    ranges = _ranges(len(header), size, cpus)
    task = ray.put((filesystem, path, len(header), schema, scratch))
    pending = [_stage_range.remote(task, index, start, end) for index, (start, end) in enumerate(ranges)]
    nodes: set[str] | None = None  # None: a task failed, so any node may hold a part
    try:
        results: list[_Range] = ray.get(pending)
        nodes = {r.part.node for r in results if r.part is not None}
        _check(results, header.count(b'"'))
        yield StagedInput([r.part for r in results if r.part is not None], schema, results[0].head)
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
    """Parses the lines that start in [start, end) and writes them to an Arrow file in this node's scratch dir."""
    filesystem, path, header_end, schema, scratch = task
    with filesystem.open_input_file(path) as handle:
        size = handle.size()
        begin = _line_start(handle, start, header_end)
        stop = _line_start(handle, end, header_end) if end < size else size
        handle.seek(begin)
        body = handle.read(max(0, stop - begin))
    options = pa_csv.ReadOptions(use_threads=False, column_names=schema.names)
    try:
        table = (
            pa_csv.read_csv(pa.BufferReader(body), read_options=options, convert_options=_convert_options(schema))
            if body.strip()
            else schema.empty_table()  # no rows (pyarrow refuses an empty input)
        )
    except pa.ArrowInvalid as e:  # the driver first checks that the range did not start inside quotes
        return _Range(None, None, body.count(b'"'), f"the CSV file does not parse (bytes {begin} to {stop}): {e}")
    directory = Path(tempfile.gettempdir()) / scratch
    directory.mkdir(exist_ok=True)
    target = directory / f"{index:06d}.arrow"
    with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        writer.write_table(table.cast(schema) if not table.schema.equals(schema) else table)
    part = StagedPart(
        node=ray.get_runtime_context().get_node_id(),
        path=str(target),
        rows=table.num_rows,
        nulls={f.name: table.column(f.name).null_count for f in schema},
    )
    return _Range(part, table.slice(0, SAMPLE_ROWS) if index == 0 else None, body.count(b'"'))


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
