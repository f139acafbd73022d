from typing import Any

from fastapi import APIRouter, Depends, Query, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from app.api.deps import IdPath, PageDep, SessionDep, SettingsDep, StoreDep, require
from app.api.schemas import DatasetCreate, DatasetPublic, DatasetVersionDetail, Page
from app.db.models import User
from app.db.session import session_scope
from app.services.data import datasets, profiles

router = APIRouter(prefix="/dataset", tags=["datasets"])


@router.post("", response_model=DatasetPublic, status_code=201)
def create_dataset(body: DatasetCreate, session: SessionDep, user: User = Depends(require("dataset:add"))) -> object:
    return datasets.create_dataset(session, owner=user, name=body.name, description=body.description)


@router.get("", response_model=Page[DatasetPublic])
def list_datasets(
    session: SessionDep,
    page: PageDep,
    name: str | None = Query(default=None, max_length=128, description="Datasets whose name contains this."),
    user: User = Depends(require("dataset:list")),
) -> object:
    """Sorts: id (default), name, created_at."""
    return datasets.list_datasets(session, user=user, request=page, name=name)


@router.get("/version/{version_id}", response_model=DatasetVersionDetail)
def get_version(version_id: IdPath, session: SessionDep, user: User = Depends(require("dataset:query"))) -> object:
    return datasets.get_version(session, user=user, version_id=version_id)


@router.get("/version/{version_id}/profile")
def get_profile(
    version_id: IdPath, settings: SettingsDep, store: StoreDep, user: User = Depends(require("dataset:query"))
) -> dict[str, Any]:
    return profiles.get_profile(settings, store, user=user, version_id=version_id)


@router.delete("/version/{version_id}", status_code=204)
def delete_version(
    version_id: IdPath, settings: SettingsDep, store: StoreDep, user: User = Depends(require("dataset:remove"))
) -> Response:
    datasets.delete_version(settings, store, user=user, version_id=version_id)
    return Response(status_code=204)


@router.get("/{dataset_id}", response_model=DatasetPublic)
def get_dataset(dataset_id: IdPath, session: SessionDep, user: User = Depends(require("dataset:query"))) -> object:
    return datasets.get_dataset(session, user=user, dataset_id=dataset_id)


@router.get("/{dataset_id}/version", response_model=Page[DatasetVersionDetail])
def list_versions(
    dataset_id: IdPath, session: SessionDep, page: PageDep, user: User = Depends(require("dataset:query"))
) -> object:
    """The dataset's versions, oldest first (sorts: version, id, created_at), with their lineage (parent,
    pipeline, state)."""
    return datasets.list_versions(session, user=user, dataset_id=dataset_id, request=page)


@router.delete("/{dataset_id}", status_code=204)
def delete_dataset(
    dataset_id: IdPath, settings: SettingsDep, store: StoreDep, user: User = Depends(require("dataset:remove"))
) -> Response:
    datasets.delete_dataset(settings, store, user=user, dataset_id=dataset_id)
    return Response(status_code=204)


@router.post("/{dataset_id}/version", response_model=DatasetVersionDetail, status_code=201)
async def upload_version(
    dataset_id: IdPath,
    file: UploadFile,
    settings: SettingsDep,
    store: StoreDep,
    user: User = Depends(require("dataset:upload")),
) -> object:
    """Uploads a whole file in one request (small files); large files go through upload sessions."""

    def add() -> DatasetVersionDetail:  # checks, hashes, stores and reads back: blocking, so in a thread
        version_id = datasets.add_version(
            settings, store, user=user, dataset_id=dataset_id, file_name=file.filename or "", source=file.file
        )
        with session_scope(settings.database_url) as session:
            return DatasetVersionDetail.model_validate(datasets.get_version(session, user=user, version_id=version_id))

    return await run_in_threadpool(add)
