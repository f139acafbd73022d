"""Preprocessing: a dataset's feature configuration, and pipeline runs (Ray jobs) that make new versions."""

from typing import Any

from fastapi import APIRouter, Depends

from app.api.deps import IdPath, PageDep, SessionDep, SettingsDep, StoreDep, require
from app.api.schemas import DatasetPublic, FeatureConfig, Page, PipelineCreate, PipelineRunPublic
from app.contracts.pipeline_steps import stored
from app.contracts.status import DataJobStatus
from app.db.models import User
from app.db.session import session_scope
from app.services.data import pipelines

router = APIRouter(prefix="/dataset", tags=["pipelines"])


@router.put("/{dataset_id}/features", response_model=DatasetPublic)
def set_features(
    dataset_id: IdPath, body: FeatureConfig, session: SessionDep, user: User = Depends(require("dataset:edit"))
) -> object:
    return pipelines.set_feature_config(session, user=user, dataset_id=dataset_id, config=body.model_dump())


@router.post("/version/{version_id}/pipeline", response_model=PipelineRunPublic, status_code=202)
def start_run(
    version_id: IdPath, body: PipelineCreate, settings: SettingsDep, user: User = Depends(require("dataset:process"))
) -> object:
    run_id = pipelines.start_run(
        settings, user=user, version_id=version_id, steps=[stored(step) for step in body.steps]
    )
    with session_scope(settings.database_url) as session:
        return PipelineRunPublic.model_validate(pipelines.get_run(session, user=user, run_id=run_id))


@router.get("/pipeline/{run_id}", response_model=PipelineRunPublic)
def get_run(run_id: IdPath, session: SessionDep, user: User = Depends(require("dataset:query"))) -> object:
    return pipelines.get_run(session, user=user, run_id=run_id)


@router.get("/version/{version_id}/pipeline", response_model=Page[PipelineRunPublic])
def list_runs(
    version_id: IdPath,
    session: SessionDep,
    page: PageDep,
    status: DataJobStatus | None = None,
    user: User = Depends(require("dataset:query")),
) -> object:
    """Runs on this version (as their input), newest first."""
    return pipelines.list_runs(session, user=user, version_id=version_id, status=status, request=page)


@router.get("/{dataset_id}/pipeline", response_model=Page[PipelineRunPublic])
def list_dataset_runs(
    dataset_id: IdPath,
    session: SessionDep,
    page: PageDep,
    status: DataJobStatus | None = None,
    user: User = Depends(require("dataset:query")),
) -> object:
    """Runs on any version of the dataset, newest first."""
    return pipelines.list_runs(session, user=user, dataset_id=dataset_id, status=status, request=page)


@router.get("/version/{version_id}/state")
def get_state(
    version_id: IdPath, session: SessionDep, store: StoreDep, user: User = Depends(require("dataset:query"))
) -> dict[str, Any]:
    """The fitted state of a pipeline-made version: imputation values, bounds, scaler parameters, vocabularies."""
    return pipelines.version_state(session, store, user=user, version_id=version_id)
