"""Reading stored dataset versions with Ray Data, from the local filesystem or S3, straight from storage."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.csv as pa_csv

from app.core.config import Settings
from app.db.models import DatasetVersion
from app.services.data import formats
from app.storage.base import check_key


def source(settings: Settings, key: str) -> tuple[str, Any]:
    """(path, pyarrow filesystem or None) of an object, as Ray Data's readers take them."""
    parsed = urlparse(settings.storage_url)
    check_key(key)
    if parsed.scheme == "file":
        return str(Path(parsed.netloc + parsed.path) / key), None
    import pyarrow.fs

    filesystem = pyarrow.fs.S3FileSystem(
        endpoint_override=settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        scheme="https" if settings.s3_secure else "http",
    )
    prefix = parsed.path.strip("/")
    return f"{parsed.netloc}/{prefix + '/' if prefix else ''}{key}", filesystem


def read_version(settings: Settings, version: DatasetVersion, *, as_strings: bool = False) -> Any:
    """The version as a Ray Data dataset, its rows in the file's order (a quality report's example rows and a
    pipeline's output rows refer to it). `as_strings` keeps CSV cells as text (missing cells as null), so a quality
    check types the columns itself instead of failing on the first cell that does not parse."""
    import ray.data

    ray.data.DataContext.get_current().execution_options.preserve_order = True
    path, filesystem = source(settings, version.storage_key)
    if version.format == "csv":
        column_types = {c["name"]: pa.string() for c in version.columns} if as_strings else None
        options = pa_csv.ConvertOptions(strings_can_be_null=True, column_types=column_types)
        return ray.data.read_csv(path, filesystem=filesystem, convert_options=options)
    if version.format == "jsonl" and formats.has_mixed_columns(version.columns):
        lines = ray.data.read_text(path, filesystem=filesystem)
        return lines.map_batches(partial(_json_lines, columns=version.columns), batch_format="pyarrow")
    if version.format == "jsonl":
        return ray.data.read_json(path, filesystem=filesystem, lines=True, file_extensions=None)
    if version.format == "parquet":
        return ray.data.read_parquet(path, filesystem=filesystem, file_extensions=None)
    raise ValueError(f"Version {version.id} is a {version.format} set, not tabular.")


def _json_lines(batch: pa.Table, columns: list[dict[str, Any]]) -> pa.Table:
    return formats.json_lines_table(batch.column("text").to_pylist(), columns)


def to_frame(dataset: Any) -> Any:
    """A Ray dataset as one pandas frame with plain object text columns (see quality_checks.plain_frame)."""
    from app.services.data.quality_checks import plain_frame

    return plain_frame(dataset.to_pandas())
