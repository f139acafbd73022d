"""Preprocessing pipelines: a run fits the steps on one version in a Ray job (`python -m train_jobs.preprocess
RUN_ID`, reading with Ray Data) and records a new Parquet version whose lineage names its parent, the steps and the
fitted JSON state (stored under `datasets/states/`), which training records and serving reuses."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from app.contracts import formats as dataset_formats
from app.contracts.status import JobStatus
from app.core.config import Settings
from app.core.errors import hide_not_found, invalid, not_found
from app.db.models import Dataset, DatasetVersion, PipelineRun, User
from app.db.paging import PageOf, PageRequest
from app.db.session import session_scope
from app.runs import lifecycle
from app.runs.kinds import PIPELINE_RUN
from app.services.data import blobs, datasets
from app.services.data.pipeline_ops import OPS
from app.services.data.pipeline_transform import fit_transform
from app.storage import ObjectStore

FEATURE_KEYS = ("target", "numeric", "categorical")


def set_feature_config(session: Session, *, user: User, dataset_id: int, config: dict[str, Any]) -> Dataset:
    """Sets the columns pipeline steps without `columns` work on; they must be columns of the newest version."""
    dataset = datasets.writable_dataset(session, user=user, dataset_id=dataset_id)
    features = {k: v for k, v in config.items() if k in FEATURE_KEYS}
    found = feature_problems(features, _newest_columns(dataset))
    if found:
        raise invalid("The feature configuration is wrong: " + "; ".join(found) + ".")
    dataset.feature_config = features
    return dataset


def feature_problems(features: dict[str, Any], columns: list[str] | None) -> list[str]:
    """What is wrong with a feature configuration against the data's columns (None: no tabular version yet)."""
    found = []
    numeric, categorical = list(features.get("numeric") or []), list(features.get("categorical") or [])
    target = features.get("target")
    for name, listed in (("numeric", numeric), ("categorical", categorical)):
        repeated = sorted({c for c in listed if listed.count(c) > 1})
        if repeated:
            found.append(f"{name} lists {repeated} more than once")
    both = sorted(set(numeric) & set(categorical))
    if both:
        found.append(f"{both} are both numeric and categorical; choose one")
    if target is not None and target in numeric + categorical:
        found.append(f"the target {target!r} is also listed as a feature; pipelines never transform the target")
    if columns is not None:
        named = dict.fromkeys([*([target] if target else []), *numeric, *categorical])
        unknown = [c for c in named if c not in columns]
        if unknown:
            found.append(f"{unknown} are not columns of the newest version; its columns are {columns}")
    return found


def _newest_columns(dataset: Dataset) -> list[str] | None:
    tabular = [v for v in dataset.versions if v.format in dataset_formats.TABULAR]
    return [c["name"] for c in tabular[-1].columns] if tabular else None


def check_steps(steps: list[dict[str, Any]]) -> None:
    if not steps:
        raise invalid("A pipeline needs at least one step, e.g. {'op': 'impute', 'strategy': 'mean'}.")
    for index, step in enumerate(steps):
        if step.get("op") not in OPS:
            raise invalid(f"Step {index} has op {step.get('op')!r}; use one of {', '.join(OPS)}.")


def start_run(settings: Settings, *, user: User, version_id: int, steps: list[dict[str, Any]]) -> int:
    """Records a QUEUED run and hands it to Ray; returns the run id at once."""
    check_steps(steps)
    with session_scope(settings.database_url) as session:
        version = datasets.get_version(session, user=user, version_id=version_id)
        datasets.writable_dataset(session, user=user, dataset_id=version.dataset_id)  # the new version goes there
        if version.format not in dataset_formats.TABULAR:
            raise invalid(f"Version {version_id} is a {version.format} set; pipelines take tabular data.")
        run = PipelineRun(input_version_id=version.id, owner_id=user.id, steps=steps, status=JobStatus.QUEUED)
        lifecycle.created(session, PIPELINE_RUN, run, f"Requested by {user.username}.")
        run_id = run.id
    lifecycle.submit_new(settings, PIPELINE_RUN, run_id, [str(run_id)])
    return run_id


def get_run(session: Session, *, user: User, run_id: int) -> PipelineRun:
    run = session.get(PipelineRun, run_id)
    if run is None:
        raise not_found("Pipeline run", run_id)
    with hide_not_found("Pipeline run", run_id):  # readable input: readable run; its id is not told
        datasets.get_version(session, user=user, version_id=run.input_version_id)
    return run


def list_runs(
    session: Session,
    *,
    user: User,
    version_id: int | None = None,
    dataset_id: int | None = None,
    status: str | None = None,
    request: PageRequest = PageRequest(),
) -> PageOf[PipelineRun]:
    """Runs on one version, or on any version of one dataset (newest first); 404 if the user cannot see it."""
    return datasets.rows_of_version_or_dataset(
        session,
        user=user,
        row_type=PipelineRun,
        version_column=PipelineRun.input_version_id,
        version_id=version_id,
        dataset_id=dataset_id,
        status=status,
        request=request,
    )


def load_state(store: ObjectStore, state_key: str) -> dict[str, Any]:
    return json.loads(store.get_bytes(state_key))


def version_state(session: Session, store: ObjectStore, *, user: User, version_id: int) -> dict[str, Any]:
    """The fitted state (JSON) of a pipeline-made version the user may read."""
    version = datasets.get_version(session, user=user, version_id=version_id)
    if not version.state_key:
        raise invalid(
            f"Version {version_id} was not made by a pipeline, so it has no fitted state; "
            "ask for the output version of a pipeline run."
        )
    return load_state(store, version.state_key)


def execute(settings: Settings, store: ObjectStore, *, run_id: int, frame: pd.DataFrame) -> int:
    """Fits and applies the run's steps to `frame` (the input version), records the output version; returns its id.

    Called by the Ray job with the frame Ray Data read; raises PipelineError when the steps do not fit the data.
    """
    with session_scope(settings.database_url) as session:
        run = session.get_one(PipelineRun, run_id)
        steps = list(run.steps)
        features = dict(session.get_one(DatasetVersion, run.input_version_id).dataset.feature_config or {})
    state, out = fit_transform(steps, frame, features)
    with tempfile.TemporaryDirectory(prefix="aip-pipeline-") as tmp:
        path = Path(tmp) / "out.parquet"
        pq.write_table(pa.Table.from_pandas(out.reset_index(drop=True), preserve_index=False), path)
        return record_output(settings, store, run_id=run_id, state=state, path=path)


def record_output(settings: Settings, store: ObjectStore, *, run_id: int, state: dict[str, Any], path: Path) -> int:
    """Stores the fitted state and records the Parquet file at `path` as the run's output version; returns its id."""
    with session_scope(settings.database_url) as session:
        run = session.get_one(PipelineRun, run_id)
        steps = list(run.steps)
        source = session.get_one(DatasetVersion, run.input_version_id)
        dataset_id, parent_id, stem = source.dataset_id, source.id, source.file_name.rsplit(".", 1)[0]
    state_bytes = json.dumps(state, sort_keys=True, allow_nan=False).encode()
    state_key = f"{blobs.STATE_PREFIX}{hashlib.sha256(state_bytes).hexdigest()}.json"
    store.put_bytes(state_key, state_bytes)
    try:

        def close(session: Session, version: DatasetVersion) -> None:
            done = session.get_one(PipelineRun, run_id)
            if lifecycle.succeed(session, PIPELINE_RUN, done):
                done.output_version_id = version.id

        return datasets.record_version(
            settings,
            store,
            dataset_id=dataset_id,
            file_name=f"{stem}-pipeline{run_id}.parquet",
            fmt="parquet",
            path=path,
            sha256=_sha256(path),
            parent_id=parent_id,
            pipeline={"run_id": run_id, "steps": steps},
            state_key=state_key,
            on_commit=close,
        )
    except BaseException:
        blobs.remove_unreferenced(settings, store, [state_key])
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def serving_signature(
    session: Session, store: ObjectStore, *, version_id: int, model_inputs: list[str]
) -> dict[str, Any]:
    """Signature entries of a model trained on a pipeline-made version: serving takes the raw columns the
    pipeline was fitted on and applies the stored state before the model. Empty for other versions."""
    version = session.get_one(DatasetVersion, version_id)
    if not version.state_key:
        return {}
    state = load_state(store, version.state_key)
    raw = [c for c in state["input_columns"] if c != state.get("target")]
    return {"inputs": raw, "model_inputs": model_inputs, "pipeline_state_key": version.state_key}
