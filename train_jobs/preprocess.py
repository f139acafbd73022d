"""Ray job entrypoint: a preprocessing pipeline run over one dataset version, read from storage with Ray Data.

Run by the platform as `python -m train_jobs.preprocess RUN_ID`. On success the run row names the new version
(Parquet, with its parent, the steps and the fitted JSON state); on failure it says why.

Memory stays bounded by the block size, not the data size: a version is read by one task per piece (byte ranges of
CSV or JSON lines, runs of Parquet row groups) and staged as Arrow files on the nodes' disks
(train_jobs/staged_input.py); a file that cannot be cut (CSV text with line breaks, nested JSON) is read by Ray
Data into Ray's object store (spilled to disk past its capacity). Each step is fitted by streaming passes over the
parts and the output is written group by group (train_jobs/streaming_fit.py).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import ray

from app.contracts.status import JobStatus
from app.core.config import Settings, get_settings
from app.db.models import DatasetVersion, PipelineRun
from app.db.session import session_scope
from app.services.data import data_io, pipelines
from app.services.data.pipeline_transform import fit_source
from app.storage import open_store
from train_jobs.staged_input import STAGED_FORMATS, NotStaged, staged_input
from train_jobs.streaming_fit import BlockSource, cluster_cpus


def run(run_id: int) -> int:
    settings = get_settings()
    ray.init()  # inside a Ray job this joins the job's cluster
    with session_scope(settings.database_url) as session:
        pipeline_run = pipelines.mark_running(session, run_id)
        steps = list(pipeline_run.steps)
        version = session.get_one(DatasetVersion, pipeline_run.input_version_id)
        features = dict(version.dataset.feature_config or {})
        session.expunge(version)
    with tempfile.TemporaryDirectory(prefix="aip-pipeline-") as tmp:
        path = Path(tmp) / "out.parquet"
        state = fit_and_write(settings, version, steps, features, path)
        return pipelines.record_output(settings, open_store(settings), run_id=run_id, state=state, path=path)


def fit_and_write(
    settings: Settings, version: DatasetVersion, steps: list[dict[str, Any]], features: dict[str, Any], path: Path
) -> dict[str, Any]:
    """Fits the steps on the version and writes the transformed rows to `path` (Parquet); returns the state."""
    if version.format in STAGED_FORMATS:
        try:
            with staged_input(settings, version, cluster_cpus()) as staged:
                return _fit_and_write(BlockSource.staged(staged), steps, features, path)
        except NotStaged:
            pass  # e.g. CSV text with line breaks: Ray Data's reader reads the file from the start
    blocks = data_io.read_version(settings, version).materialize()
    return _fit_and_write(BlockSource(blocks.to_arrow_refs()), steps, features, path)


def _fit_and_write(
    source: BlockSource, steps: list[dict[str, Any]], features: dict[str, Any], path: Path
) -> dict[str, Any]:
    state = fit_source(steps, source, features)
    source.write_parquet(state, path)
    return state


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
