"""Dataset version formats: what an upload is detected as, what each template and data job reads."""

from __future__ import annotations

TABULAR = ("csv", "jsonl", "parquet")
IMAGES = "images"  # a zip of class folders
SUPPORTED_FORMATS = (*TABULAR, IMAGES)

SHOWN_VALUE_CHARS = 200  # a cell shown in a profile or quality report (top values, examples) is cut to this
CLIPPED = "…"


def shown_value(text: str) -> str:
    """A cell's text as reports show it: cut to SHOWN_VALUE_CHARS with a marker, so one huge cell cannot make a
    report as large as the file."""
    return text if len(text) <= SHOWN_VALUE_CHARS else text[:SHOWN_VALUE_CHARS] + CLIPPED
