"""Ray job entrypoint: the quality check of one dataset version, read from storage with Ray Data.

Run by the platform as `python -m train_jobs.data_quality REPORT_ID`. The report row goes RUNNING, then
SUCCEEDED with the result and score, or FAILED with the reason.
"""

from __future__ import annotations

import sys

import ray

from app.contracts.status import JobStatus
from app.core.config import get_settings
from app.db.models import DatasetVersion, QualityReport
from app.db.session import session_scope
from app.services.data import data_io, quality
from app.services.data.quality_checks import QualityConfig, check


def run(report_id: int) -> None:
    settings = get_settings()
    ray.init()  # inside a Ray job this joins the job's cluster
    with session_scope(settings.database_url) as session:
        report = quality.mark_running(session, report_id)
        config = QualityConfig.from_dict(report.config)
        version = session.get_one(DatasetVersion, report.version_id)
        session.expunge(version)
    # Exact quantiles and duplicate detection need every row together: the blocks are read in parallel by Ray
    # Data and gathered into one frame (columns of a few million rows fit in memory).
    frame = data_io.to_frame(data_io.read_version(settings, version, as_strings=True))
    result = check(frame, config)
    with session_scope(settings.database_url) as session:
        quality.finish(session, report_id, result=result)


def main(argv: list[str]) -> int:
    report_id = int(argv[0])
    try:
        run(report_id)
    except Exception as e:
        with session_scope(get_settings().database_url) as session:
            report = session.get(QualityReport, report_id)
            if report is not None and report.status in (JobStatus.QUEUED, JobStatus.RUNNING):
                quality.finish(session, report_id, result=None, message=f"{type(e).__name__}: {e}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
