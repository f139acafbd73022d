"""Dataset file formats: which names are accepted, how a file is checked and read.

Tabular: CSV, JSON lines, Parquet. Image classification: a zip of class folders (`cat/1.png`, `dog/2.jpg`,
optionally under one top-level folder). Checking streams the file with pyarrow where it can, so a large upload is
not loaded into memory just to count its rows.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from app.core.errors import invalid

EXTENSIONS = {
    "csv": "csv",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "parquet": "parquet",
    "pq": "parquet",
    "zip": "images",
}
SUPPORTED_FORMATS = ("csv", "jsonl", "parquet", "images")
TABULAR = ("csv", "jsonl", "parquet")
IMAGE_EXTENSIONS = {"png", "jpg", "jpeg", "gif", "bmp", "webp"}


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


def inspect(path: Path, fmt: str) -> tuple[int, list[dict[str, str]], dict[str, Any] | None]:
    """Rows, columns (name and type) and, for image sets, the profile; raises a 422 naming what is wrong."""
    if path.stat().st_size == 0:
        raise invalid("The file is empty.")
    if fmt == "images":
        return _inspect_zip(path)
    if fmt == "parquet":
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise invalid(f"The file is not readable Parquet: {e}.") from e
        rows, schema = parquet.metadata.num_rows, parquet.schema_arrow
    elif fmt == "csv":
        rows, schema = _count_csv(path)
    else:
        rows, schema = _count_jsonl(path)
    if rows == 0:
        raise invalid(f"The {fmt.upper()} file has no rows.")
    return rows, [{"name": f.name, "dtype": _dtype_name(f.type)} for f in schema], None


def _dtype_name(arrow_type: pa.DataType) -> str:
    # Pandas' names, as the training templates and the profile use them.
    try:
        return np.dtype(arrow_type.to_pandas_dtype()).name
    except (NotImplementedError, TypeError):
        return str(arrow_type)


def _count_csv(path: Path) -> tuple[int, pa.Schema]:
    try:
        reader = pa_csv.open_csv(path, read_options=pa_csv.ReadOptions(block_size=16 << 20))
        rows = sum(batch.num_rows for batch in reader)
        return rows, reader.schema
    except pa.ArrowInvalid as e:
        if "conversion error" not in str(e).lower():
            raise invalid(f"The file is not a readable CSV: {e}. Send comma-separated text with a header row.") from e
    # A column whose type changes after the first block (e.g. numbers, then text): pandas widens it to object.
    frame = read_frame(path, "csv")
    return len(frame), pa.Schema.from_pandas(frame, preserve_index=False)


def _count_jsonl(path: Path) -> tuple[int, pa.Schema]:
    try:
        table = pa_json.read_json(path)
        return table.num_rows, table.schema
    except pa.ArrowInvalid:
        frame = read_frame(path, "jsonl")
        return len(frame), pa.Schema.from_pandas(frame, preserve_index=False)


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


def _inspect_zip(path: Path) -> tuple[int, list[dict[str, str]], dict[str, Any]]:
    try:
        with zipfile.ZipFile(path) as archive:
            entries = image_entries(archive.namelist())
    except zipfile.BadZipFile as e:
        raise invalid(f"The file is not a readable zip: {e}.") from e
    if not entries:
        raise invalid("The zip holds no images; put them in one folder per class, e.g. 'cat/1.png'.")
    classes: dict[str, int] = {}
    for _, label in entries:
        classes[label] = classes.get(label, 0) + 1
    profile = {"rows": len(entries), "kind": "image_classification", "classes": dict(sorted(classes.items()))}
    return len(entries), [{"name": "image", "dtype": "binary"}, {"name": "label", "dtype": "object"}], profile
