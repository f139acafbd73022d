"""Dataset version formats: what an upload is detected as, what each template and data job reads."""

from __future__ import annotations

TABULAR = ("csv", "jsonl", "parquet")
IMAGES = "images"  # a zip of class folders
SUPPORTED_FORMATS = (*TABULAR, IMAGES)
