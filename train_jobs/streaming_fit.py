"""Fitting and applying a preprocessing pipeline over a dataset's blocks, without gathering the rows.

The input is read once: the file is read in pieces and staged as Arrow files on the nodes' disks
(train_jobs/staged_input.py), or, where it cannot be cut, read by Ray Data into Ray's object store (which spills to
disk past its capacity). Every statistics pass then runs one Ray task per group of blocks (on the node holding a staged
group): the task converts the group to pandas, applies the steps fitted so far (the same `apply_steps` serving
uses) and returns a small partial (counts, moments, a histogram, a few gathered values) that the driver merges
(see app/services/data/pipeline_stats.py). The last pass transforms the groups and the driver writes them, in order,
to one Parquet file. No process holds more than a few groups.

Plain tasks rather than one Ray Data execution per pass: a pass is many small executions (one or two per step),
and Ray Data's per-block operator overhead (~20 ms a block) would cost more than the statistics themselves.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import ray

from app.services.data.pipeline_ops import PipelineError, apply_steps, input_columns_for
from app.services.data.quality_checks import plain_frame
from train_jobs.staged_input import StagedInput, on_node, read_staged

GROUP_ROWS = 250_000  # rows a task handles: large enough to amortise a task, small enough to bound its memory
SAMPLE_ROWS = 1_000  # rows used to resolve columns and dtypes after each step


def cluster_cpus() -> int:
    return max(1, int(ray.cluster_resources().get("CPU", os.cpu_count() or 1)))


@dataclass
class _Group:
    """Consecutive blocks one task handles: object refs (Ray passes them as tables) or the paths of staged parts,
    all on `node`, where the task must then run."""

    blocks: list[Any]
    node: str | None = None

    def submit(self, function: Any, task: ray.ObjectRef) -> ray.ObjectRef:
        if self.node is None:
            return function.remote(task, *self.blocks)
        return function.options(scheduling_strategy=on_node(self.node)).remote(task, *self.blocks)


class BlockSource:
    """A pipeline source over Arrow blocks in Ray's object store, or over parts staged on the nodes' disks
    (`staged`); see pipeline_fit.Source."""

    def __init__(self, blocks: list[ray.ObjectRef]) -> None:
        chunks = [blocks[i : i + 64] for i in range(0, len(blocks), 64)]
        info = [row for part in ray.get([_block_info.remote(*chunk) for chunk in chunks]) for row in part]
        head = ray.get(blocks[0]).slice(0, SAMPLE_ROWS) if blocks else pa.table({})
        self._setup([(None, b, i["rows"], i["nulls"]) for b, i in zip(blocks, info, strict=True)], head)

    @classmethod
    def staged(cls, staged: StagedInput) -> BlockSource:
        source = cls.__new__(cls)
        source._setup([(p.node, p.path, p.rows, p.nulls) for p in staged.parts], staged.head)
        return source

    def _setup(self, blocks: list[tuple[str | None, Any, int, dict[str, int]]], head: pa.Table) -> None:
        """`blocks`: (node or None, block, rows, missing values per column) in order; `head`: the first rows."""
        nulls = {c: any(b[3].get(c, 0) for b in blocks) for c in head.column_names}
        self._groups = _group(blocks, cluster_cpus())
        self._dtypes = _dtypes(head, nulls)
        self._sample = to_frame(head, self._dtypes)
        self.rows = sum(b[2] for b in blocks)

    def sample(self, steps: list[dict[str, Any]]) -> pd.DataFrame:
        return apply_steps(steps, self._sample)

    def collect(self, steps: list[dict[str, Any]], columns: list[str], partial: Callable[[pd.DataFrame], Any]) -> list:
        needed = input_columns_for(steps, columns)
        task = ray.put((steps, needed, partial, self._dtypes))
        return [p for parts in _get([g.submit(_partials, task) for g in self._groups]) for p in parts]

    def write_parquet(self, state: dict[str, Any], path: Path) -> int:
        """Transforms every group with the fitted state and writes them in order to one Parquet file; returns the
        rows written. At most a few transformed groups are in flight at a time."""
        window = 2 * cluster_cpus()
        pending: deque[ray.ObjectRef] = deque()
        writer = _OrderedWriter(path)
        steps = ray.put((state["steps"], self._dtypes))
        for group in self._groups:
            pending.append(group.submit(_transformed, steps))
            if len(pending) >= window:
                writer.add(_get([pending.popleft()])[0])
        while pending:
            writer.add(_get([pending.popleft()])[0])
        if not self._groups:  # no blocks: a file with no rows, which recording the version refuses with a reason
            writer.add(_arrow(apply_steps(state["steps"], self._sample)))
        return writer.close()


def to_frame(table: pa.Table, dtypes: dict[str, Any]) -> pd.DataFrame:
    """A block as pandas, as the whole data would be in one frame: text as plain objects with None for missing
    (quality_checks.plain_frame), and an integer column with a missing value anywhere is float in every block."""
    frame = table.to_pandas()
    for field in table.schema:
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            frame[field.name] = _objects(table.column(field.name))
    frame = plain_frame(frame)
    for column, dtype in dtypes.items():
        if column in frame.columns and frame[column].dtype != dtype:
            frame[column] = frame[column].astype(dtype)
    return frame


def _objects(column: pa.ChunkedArray) -> pd.Series:
    """Text as Python strings, each distinct one made once (much faster than converting cell by cell)."""
    encoded = column.combine_chunks().dictionary_encode()
    values = np.array([*encoded.dictionary.to_pylist(), None], dtype=object)
    return pd.Series(values[encoded.indices.fill_null(-1).to_numpy()], dtype=object)


def _dtypes(sample: pa.Table, nulls: dict[str, bool]) -> dict[str, Any]:
    frame = plain_frame(sample.to_pandas())
    dtypes = {}
    for field in sample.schema:
        dtype = frame[field.name].dtype
        if nulls.get(field.name) and pa.types.is_integer(field.type):
            dtype = "float64"
        elif nulls.get(field.name) and pa.types.is_boolean(field.type):
            dtype = object
        dtypes[field.name] = dtype
    return dtypes


def _group(blocks: list[tuple[str | None, Any, int, dict[str, int]]], cpus: int) -> list[_Group]:
    """Consecutive blocks of one node in groups of at most GROUP_ROWS rows (a larger block is a group of its own),
    and at least two groups per CPU where the data allows, so every core has work."""
    target = max(1, min(GROUP_ROWS, -(-sum(b[2] for b in blocks) // (2 * cpus))))
    groups: list[_Group] = []
    size = 0
    for node, block, count, _nulls in blocks:
        if not groups or groups[-1].node != node or (size and size + count > target):
            groups.append(_Group([], node))
            size = 0
        groups[-1].blocks.append(block)
        size += count
    return groups


def _get(refs: list[ray.ObjectRef]) -> list[Any]:
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, PipelineError):
            raise e.cause from None  # the step's own message, not a remote traceback
        raise


@ray.remote(num_cpus=1)
def _block_info(*blocks: pa.Table) -> list[dict[str, Any]]:
    return [{"rows": b.num_rows, "nulls": {f.name: b.column(f.name).null_count for f in b.schema}} for b in blocks]


@ray.remote(num_cpus=1)
def _partials(task: tuple, *blocks: pa.Table) -> list[Any]:
    steps, needed, partial, dtypes = task
    return [partial(apply_steps(steps, to_frame(_concat(blocks, needed), dtypes)))]


@ray.remote(num_cpus=1)
def _transformed(task: tuple, *blocks: pa.Table) -> pa.Table:
    steps, dtypes = task
    return _arrow(apply_steps(steps, to_frame(_concat(blocks), dtypes)))


def _concat(blocks: tuple[pa.Table | str, ...], columns: list[str] | None = None) -> pa.Table:
    """A group's blocks (tables, or paths of staged parts) as one table (one pandas conversion and one run of the
    steps per group, not per block)."""
    blocks = tuple(read_staged(b) if isinstance(b, str) else b for b in blocks)
    if columns is not None:
        blocks = tuple(b.select([c for c in columns if c in b.column_names]) for b in blocks)
    return pa.concat_tables(blocks, promote_options="permissive") if len(blocks) > 1 else blocks[0]


def _arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)


class _OrderedWriter:
    """Writes tables in order to one Parquet file. A column that is all missing in the first tables (Arrow type
    null) gets its type from the first table that has a value: tables are held back until then."""

    def __init__(self, path: Path) -> None:
        self._path, self._writer, self._held, self.rows = path, None, [], 0

    def add(self, table: pa.Table) -> None:
        if self._writer is not None:
            self._write(table)
            return
        self._held.append(table)
        schema = pa.unify_schemas([t.schema for t in self._held], promote_options="permissive")
        if not any(pa.types.is_null(f.type) for f in schema):
            self._open(schema)

    def close(self) -> int:
        if self._writer is None and self._held:
            self._open(pa.unify_schemas([t.schema for t in self._held], promote_options="permissive"))
        if self._writer is not None:
            self._writer.close()
        return self.rows

    def _open(self, schema: pa.Schema) -> None:
        self._writer = pq.ParquetWriter(self._path, schema)
        held, self._held = self._held, []
        for table in held:
            self._write(table)

    def _write(self, table: pa.Table) -> None:
        schema = self._writer.schema
        self._writer.write_table(table if table.schema.equals(schema) else table.cast(schema))
        self.rows += table.num_rows
