"""Ray job entrypoint: the quality check of one dataset version, read from storage with Ray Data.

Run by the platform as `python -m train_jobs.data_quality REPORT_ID` (on the shared driver, train_jobs.driver).
The report row goes RUNNING, then SUCCEEDED with the result and score, or FAILED with the reason.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.db.models import DatasetVersion, QualityReport
from app.runs.kinds import QUALITY_REPORT
from app.services.data import data_io, quality
from app.services.data.quality_checks import QualityConfig, check
from train_jobs.driver import Entrypoint, Record, run_main


def load(_settings: Settings, session: Session, report: QualityReport) -> tuple[QualityConfig, DatasetVersion]:
    config = QualityConfig.from_dict(report.config)
    version = session.get_one(DatasetVersion, report.version_id)
    session.expunge(version)
    return config, version


def work(settings: Settings, _report_id: int, loaded: tuple[QualityConfig, DatasetVersion]) -> Record:
    config, version = loaded
    # Exact quantiles and duplicate detection need every row together: the blocks are read in parallel by Ray
    # Data and gathered into one frame (columns of a few million rows fit in memory).
    frame = data_io.to_frame(data_io.read_version(settings, version, as_strings=True))
    result: dict[str, Any] = check(frame, config)
    return lambda _session, report: quality.record_result(report, result)


ENTRYPOINT = Entrypoint(QUALITY_REPORT, load, work)

if __name__ == "__main__":
    run_main(ENTRYPOINT)
