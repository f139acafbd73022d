"""Ray job entrypoint: a preprocessing pipeline run over one dataset version, read from storage with Ray Data.

Run by the platform as `python -m train_jobs.preprocess RUN_ID`. On success the run row names the new version
(Parquet, with its parent, the steps and the fitted JSON state); on failure it says why.
"""

from __future__ import annotations

import sys

import ray

from app.core.config import get_settings
from app.db.models import DatasetVersion, JobStatus, PipelineRun
from app.db.session import session_scope
from app.services import data_io, pipelines
from app.storage import open_store


def run(run_id: int) -> int:
    settings = get_settings()
    ray.init()  # inside a Ray job this joins the job's cluster
    with session_scope(settings.database_url) as session:
        pipeline_run = pipelines.mark_running(session, run_id)
        version = session.get_one(DatasetVersion, pipeline_run.input_version_id)
        session.expunge(version)
    # Ray Data reads the blocks in parallel (pyarrow, straight from storage); each step's statistics need every
    # row, so the steps are fitted and applied on the gathered frame.
    frame = data_io.to_frame(data_io.read_version(settings, version))
    return pipelines.execute(settings, open_store(settings), run_id=run_id, frame=frame)


def main(argv: list[str]) -> int:
    run_id = int(argv[0])
    try:
        run(run_id)
    except Exception as e:
        with session_scope(get_settings().database_url) as session:
            pipeline_run = session.get(PipelineRun, run_id)
            if pipeline_run is not None and pipeline_run.status in (JobStatus.QUEUED, JobStatus.RUNNING):
                pipelines.fail(session, run_id, f"{type(e).__name__}: {e}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
