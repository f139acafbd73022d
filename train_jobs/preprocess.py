"""Ray job entrypoint: a preprocessing pipeline run over one dataset version, read from storage with Ray Data.

Run by the platform as `python -m train_jobs.preprocess RUN_ID` (on the shared driver, train_jobs.driver). On
success the run row names the new version (Parquet, with its parent, the steps and the fitted JSON state); on failure
it says why.

Memory stays bounded by the block size, not the data size: a version is read by one task per piece (byte ranges of
CSV or JSON lines, runs of Parquet row groups) and staged as Arrow files on the nodes' disks
(train_jobs/staged_input.py); a file that cannot be cut (CSV text with line breaks, nested JSON) is read by Ray
Data into Ray's object store (spilled to disk past its capacity). Each step is fitted by streaming passes over the
parts and the output is written group by group (train_jobs/streaming_fit.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.db.models import DatasetVersion, PipelineRun
from app.runs.kinds import PIPELINE_RUN
from app.services.data import data_io, pipelines
from app.services.data.pipeline_transform import fit_source
from app.storage import open_store
from train_jobs.driver import Entrypoint, Record, run_main
from train_jobs.staged_input import STAGED_FORMATS, NotStaged, staged_input
from train_jobs.streaming_fit import BlockSource, cluster_cpus

Loaded = tuple[list[dict[str, Any]], DatasetVersion, dict[str, Any]]


def load(_settings: Settings, session: Session, pipeline_run: PipelineRun) -> Loaded:
    """The run's steps, its input version and the dataset's feature configuration."""
    version = session.get_one(DatasetVersion, pipeline_run.input_version_id)
    features = dict(version.dataset.feature_config or {})
    session.expunge(version)
    return list(pipeline_run.steps), version, features


def work(settings: Settings, run_id: int, loaded: Loaded) -> Record | None:
    steps, version, features = loaded
    with tempfile.TemporaryDirectory(prefix="aip-pipeline-") as tmp:
        path = Path(tmp) / "out.parquet"
        state = fit_and_write(settings, version, steps, features, path)
        # Records the output version and the run's success in one transaction.
        pipelines.record_output(settings, open_store(settings), run_id=run_id, state=state, path=path)
    return None


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


ENTRYPOINT = Entrypoint(PIPELINE_RUN, load, work)

if __name__ == "__main__":
    run_main(ENTRYPOINT)
