"""Profile of a dataset version: rows, columns, and per column its type, missing and unique counts,
min/max/mean/std, top values and histogram bins.

Versions are immutable, so a profile is computed once and stored with the row. Creating a version does not wait
for it: the reconcile loop starts a background worker that profiles every tabular version still without one (image
sets get theirs from `formats.inspect` at creation). A read that comes first computes it on the spot, sharing the
worker's computation when one is under way in this process.

The file is read in record batches (pyarrow) and each column's statistics are merged batch by batch, so memory
stays bounded whatever the file's size. Counts, min/max/mean/std and histograms are exact. Unique counts and top
values are exact up to a budget of distinct values per column; past it the column says `approximate`, its unique
count is a k-minimum-values estimate (about 1.6% error) and its top values come from the counts kept.

Database sessions: profiling opens its own short transactions (read the version, then store its profile) so none
is held open while a large file is downloaded and read, which takes minutes.
"""

from __future__ import annotations

import logging
import math
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from sqlalchemy import ColumnElement, String, cast, or_, select

from app.contracts import formats as dataset_formats
from app.contracts.formats import shown_value
from app.core.config import Settings
from app.core.errors import invalid, not_found
from app.db.models import DatasetVersion, User
from app.db.session import session_scope
from app.services.data import datasets, formats
from app.storage import ObjectStore

log = logging.getLogger(__name__)

TOP_VALUES = 10
HISTOGRAM_BINS = 10
BLOCK_BYTES = 16 << 20  # bytes of file per batch (CSV, JSON lines); Parquet batches hold about as many values
DISTINCT_BUDGET = 2_000_000  # distinct values counted exactly, shared by the columns of one file
MIN_DISTINCT_PER_COLUMN = 1_000
SKETCH_SIZE = 4096  # k of the k-minimum-values estimate of a column's unique count
RETRY_FAILED_AFTER_S = 600.0


def get_profile(settings: Settings, store: ObjectStore, *, user: User, version_id: int) -> dict[str, Any]:
    """The version's profile for a user who may read it: the stored one, or computed now and stored."""
    with session_scope(settings.database_url) as session:
        version = datasets.get_version(session, user=user, version_id=version_id)
        if version.profile is not None:
            return _clipped(version.profile)
    profile = ensure_profile(settings, store, version_id=version_id)
    if profile is None:  # deleted meanwhile
        raise not_found("Dataset version", version_id)
    return profile


def _clipped(profile: dict[str, Any]) -> dict[str, Any]:
    # Profiles stored before values were clipped may hold a whole huge cell (a copy: the row's JSON stays as is).
    if "column_profiles" not in profile:
        return profile
    columns = [
        {**c, "top_values": [{**t, "value": shown_value(str(t["value"]))} for t in c["top_values"]]}
        if "top_values" in c
        else c
        for c in profile["column_profiles"]
    ]
    return {**profile, "column_profiles": columns}


# --- computed once per version, in the background or on the first read ---

_lock = threading.Lock()
_in_flight: dict[int, threading.Event] = {}  # version id -> set when its computation (in this process) ends
_failed_at: dict[int, float] = {}  # version id -> when profiling it last failed (retried later, not every tick)
_worker: threading.Thread | None = None


def ensure_profile(settings: Settings, store: ObjectStore, *, version_id: int) -> dict[str, Any] | None:
    """The stored profile of a version, computing and storing it first if it has none; None if there is no
    such version. Concurrent callers in one process share one computation."""
    with _lock:
        running = _in_flight.get(version_id)
        if running is None:
            _in_flight[version_id] = threading.Event()
    if running is not None:
        running.wait()
        with session_scope(settings.database_url) as session:
            version = session.get(DatasetVersion, version_id)
            if version is None or version.profile is not None:
                return None if version is None else version.profile
        return ensure_profile(settings, store, version_id=version_id)  # the other computation failed: try again
    try:
        with session_scope(settings.database_url) as session:
            version = session.get(DatasetVersion, version_id)
            if version is None or version.profile is not None:
                return None if version is None else version.profile
            fmt, key, columns = version.format, version.storage_key, list(version.columns)
        with tempfile.TemporaryDirectory(prefix="aip-profile-") as tmp:
            path = Path(tmp) / "data"
            store.download(key, path)
            profile = profile_file(path, fmt, columns)
        with session_scope(settings.database_url) as session:
            version = session.get(DatasetVersion, version_id)
            if version is None:
                return None
            if version.profile is None:
                version.profile = profile
            _failed_at.pop(version_id, None)
            return version.profile
    finally:
        with _lock:
            _in_flight.pop(version_id).set()


def start_background(settings: Settings, store: ObjectStore) -> None:
    """Starts the worker that profiles versions without a profile, unless it is running (called every tick of
    the reconcile loop, which it must not hold up: a big file takes a while)."""
    global _worker
    with _lock:
        if _worker is not None and _worker.is_alive():
            return
        _worker = threading.Thread(target=profile_pending, args=(settings, store), name="profiles", daemon=True)
        _worker.start()


def profile_pending(settings: Settings, store: ObjectStore) -> int:
    """Profiles every tabular version that has no profile yet, oldest first; returns how many it stored.

    A version whose profile fails (e.g. its blob is unreadable) is logged and left for RETRY_FAILED_AFTER_S.
    """
    stored = 0
    while True:
        now = time.monotonic()
        with session_scope(settings.database_url) as session:
            ids = [
                version_id
                for version_id in session.scalars(
                    select(DatasetVersion.id)
                    .where(_without_profile(), DatasetVersion.format.in_(dataset_formats.TABULAR))
                    .order_by(DatasetVersion.id)
                    .limit(100)
                )
                if now - _failed_at.get(version_id, -math.inf) > RETRY_FAILED_AFTER_S
            ]
        if not ids:
            return stored
        for version_id in ids:
            try:
                if ensure_profile(settings, store, version_id=version_id) is not None:
                    stored += 1
            except Exception:
                _failed_at[version_id] = time.monotonic()
                log.exception(
                    "Profiling dataset version %s failed; retrying in %.0f s", version_id, RETRY_FAILED_AFTER_S
                )


def _without_profile() -> ColumnElement[bool]:
    # A JSON column holding Python None may be SQL NULL or the JSON value null, depending on how the row was made.
    return or_(DatasetVersion.profile.is_(None), cast(DatasetVersion.profile, String) == "null")


# --- the statistics, merged batch by batch ---


def profile_file(
    path: Path,
    fmt: str,
    columns: list[dict[str, Any]],
    *,
    block_bytes: int = BLOCK_BYTES,
    distinct_budget: int = DISTINCT_BUDGET,
) -> dict[str, Any]:
    """Profile of a tabular file whose columns (name, pandas dtype) `formats.inspect` recorded."""
    budget = max(MIN_DISTINCT_PER_COLUMN, distinct_budget // max(1, len(columns)))
    stats = [_ColumnStats(c["name"], c["dtype"], budget) for c in columns]
    rows = 0
    for batch in read_batches(path, fmt, columns, block_bytes=block_bytes):
        rows += batch.num_rows
        for column in stats:
            column.add(batch.column(column.name))
    # Histogram bins span [min, max], known only after the first pass: a second pass counts into them.
    binned = [c for c in stats if c.numeric and c.count]
    if binned:
        wanted = [c.name for c in binned]
        for batch in read_batches(path, fmt, columns, block_bytes=block_bytes, only=wanted):
            for column in binned:
                column.add_to_histogram(batch.column(column.name))
    return {"rows": rows, "columns": len(stats), "column_profiles": [c.result() for c in stats]}


def read_batches(
    path: Path,
    fmt: str,
    columns: list[dict[str, Any]],
    *,
    block_bytes: int = BLOCK_BYTES,
    only: list[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """The file as record batches with the recorded column types, so every batch agrees with the others."""
    types = {c["name"]: t for c in columns if (t := formats.arrow_type(c["dtype"])) is not None}
    batch_rows = max(1, block_bytes // (8 * max(1, len(columns))))
    try:
        if fmt == "parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=only)
        elif fmt == "jsonl" and formats.has_mixed_columns(columns):
            for batch in formats.json_lines_batches(path, columns, batch_rows):
                yield batch.select(only) if only else batch
        elif fmt == "csv":
            convert = pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True, include_columns=only)
            yield from pa_csv.open_csv(
                path, read_options=pa_csv.ReadOptions(block_size=block_bytes), convert_options=convert
            )
        elif fmt == "jsonl":
            schema = pa.schema([pa.field(name, t) for name, t in types.items()])
            for batch in pa_json.open_json(
                path,
                read_options=pa_json.ReadOptions(block_size=block_bytes),
                parse_options=pa_json.ParseOptions(explicit_schema=schema),
            ):
                yield batch.select(only) if only else batch
        else:
            raise invalid(f"A {fmt} dataset is not tabular; profiles of image sets are made when they are uploaded.")
    except pa.ArrowInvalid as e:
        raise invalid(f"The {fmt.upper()} file could not be read in batches: {e}.") from e


class _ColumnStats:
    """One column's statistics over the batches seen so far."""

    def __init__(self, name: str, dtype: str, max_distinct: int) -> None:
        self.name, self.dtype, self.max_distinct = name, dtype, max_distinct
        try:
            kind = np.dtype(dtype).kind
        except (TypeError, ValueError):
            kind = "O"  # nested (struct, list): counted as missing or present only
        self.numeric = kind in "iuf"
        self.missing = 0
        # Distinct values and their rows, in order of first appearance (as pandas ties them), kept as Arrow arrays
        # and merged in Arrow: a column of millions of distinct values never becomes Python objects.
        self.values: pa.Array | None = None
        self.counts = pa.array([], pa.int64())
        self.countable = True
        self.approximate = False
        self.sketch = np.empty(0, dtype=np.uint64)  # the SKETCH_SIZE smallest hashes of the distinct values
        self.count, self.mean, self.m2 = 0, 0.0, 0.0
        self.min, self.max = math.inf, -math.inf
        self.histogram = np.zeros(HISTOGRAM_BINS, dtype=np.int64)

    def add(self, array: pa.Array | pa.ChunkedArray) -> None:
        present = self._present(array)
        self.missing += len(array) - len(present)
        if self.countable:
            try:
                self._count_values(present)
            except (pa.ArrowNotImplementedError, TypeError):  # nested values: no top values or unique count
                self.countable, self.values = False, None
        if self.numeric and len(present):
            self._add_moments(present.cast(pa.float64()).to_numpy(zero_copy_only=False))

    @staticmethod
    def _present(array: pa.Array | pa.ChunkedArray) -> pa.Array:
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if pa.types.is_dictionary(array.type):  # e.g. pandas categories stored in Parquet
            array = array.dictionary_decode()
        present = pc.drop_null(array)
        if pa.types.is_floating(present.type):  # NaN is missing, as pandas counts it
            present = present.filter(pc.invert(pc.is_nan(present)))
        return present

    def _count_values(self, present: pa.Array) -> None:
        if not len(present):
            return
        found = pc.value_counts(present)
        values, counts = found.field("values"), found.field("counts").cast(pa.int64())
        hashes = pd.util.hash_array(values.to_numpy(zero_copy_only=False))
        self.sketch = np.unique(np.concatenate([self.sketch, hashes]))[:SKETCH_SIZE]
        if self.values is not None:
            both = pa.table(
                {"v": pa.concat_arrays([self.values, values]), "n": pa.concat_arrays([self.counts, counts])}
            )
            merged = both.group_by("v", use_threads=False).aggregate([("n", "sum")])  # keeps first-seen order
            values, counts = merged.column("v").combine_chunks(), merged.column("n_sum").combine_chunks()
        if len(values) > self.max_distinct:  # keep the most frequent half: top values stay meaningful
            self.approximate = True
            most = pc.array_sort_indices(counts, order="descending")[: self.max_distinct // 2]
            kept = pa.array(np.sort(most.to_numpy()))
            values, counts = values.take(kept), counts.take(kept)
        self.values, self.counts = values, counts

    def _add_moments(self, values: np.ndarray) -> None:
        # Chan et al.'s pairwise update: exact mean and variance from per-batch moments, numerically stable.
        n, mean = len(values), float(values.mean())
        m2 = float(((values - mean) ** 2).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.min, self.max = min(self.min, float(values.min())), max(self.max, float(values.max()))

    def add_to_histogram(self, array: pa.Array | pa.ChunkedArray) -> None:
        values = self._present(array).cast(pa.float64()).to_numpy(zero_copy_only=False)
        self.histogram += np.histogram(values, bins=HISTOGRAM_BINS, range=(self.min, self.max))[0]

    def unique(self) -> int:
        if not self.approximate:
            return len(self.counts)
        kth = float(self.sketch[-1]) / 2.0**64
        return max(len(self.counts), round((len(self.sketch) - 1) / kth))

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "missing": self.missing}
        if self.countable:
            out["unique"], out["top_values"] = self.unique(), []
            if self.values is not None:
                order = pc.array_sort_indices(self.counts, order="descending")[:TOP_VALUES]  # stable: first seen first
                top = zip(self.values.take(order).to_pylist(), self.counts.take(order).to_pylist(), strict=True)
                out["top_values"] = [{"value": shown_value(str(value)), "count": count} for value, count in top]
        if self.approximate:
            out["approximate"] = True
        if self.numeric and self.count:
            out.update(
                min=_num(self.min),
                max=_num(self.max),
                mean=_num(self.mean),
                std=_num(math.sqrt(self.m2 / (self.count - 1))) if self.count > 1 else None,
            )
            edges = np.histogram_bin_edges(np.array([self.min, self.max]), bins=HISTOGRAM_BINS)
            out["histogram"] = {"counts": [int(c) for c in self.histogram], "edges": [_num(e) for e in edges]}
        return out


def _num(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value
