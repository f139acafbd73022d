"""Query and response types of the data layer's listings (quality reports, pipeline runs)."""

from __future__ import annotations

from enum import StrEnum


class DataJobStatus(StrEnum):
    """States of a quality check or a pipeline run (a Ray job each)."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
