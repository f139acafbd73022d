from fastapi import APIRouter, Depends, UploadFile

from app.api.deps import SessionDep, StoreDep, require
from app.api.schemas import DatasetCreate, DatasetPublic, DatasetVersionPublic
from app.db.models import User
from app.services import datasets

router = APIRouter(prefix="/dataset", tags=["datasets"])


@router.post("", response_model=DatasetPublic, status_code=201)
def create_dataset(body: DatasetCreate, session: SessionDep, user: User = Depends(require("dataset:add"))) -> object:
    return datasets.create_dataset(session, owner=user, name=body.name, description=body.description)


@router.get("", response_model=list[DatasetPublic])
def list_datasets(session: SessionDep, user: User = Depends(require("dataset:list"))) -> object:
    return datasets.list_datasets(session, user=user)


@router.get("/{dataset_id}", response_model=DatasetPublic)
def get_dataset(dataset_id: int, session: SessionDep, user: User = Depends(require("dataset:query"))) -> object:
    return datasets.get_dataset(session, user=user, dataset_id=dataset_id)


@router.post("/{dataset_id}/version", response_model=DatasetVersionPublic, status_code=201)
def upload_version(
    dataset_id: int,
    file: UploadFile,
    session: SessionDep,
    store: StoreDep,
    user: User = Depends(require("dataset:upload")),
) -> object:
    dataset = datasets.get_dataset(session, user=user, dataset_id=dataset_id)
    return datasets.add_version(session, store, dataset=dataset, file_name=file.filename or "", source=file.file)
