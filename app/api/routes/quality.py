"""Quality checks of dataset versions: start one (a Ray job), read and list reports."""

from fastapi import APIRouter, Depends

from app.api.deps import IdPath, PageDep, SessionDep, SettingsDep, require
from app.api.schemas import Page, QualityCreate, QualityReportPublic
from app.contracts.status import DataJobStatus
from app.db.models import User
from app.db.session import session_scope
from app.services.data import quality

router = APIRouter(prefix="/dataset", tags=["quality"])


@router.post("/version/{version_id}/quality", response_model=QualityReportPublic, status_code=202)
def start_check(
    version_id: IdPath, body: QualityCreate, settings: SettingsDep, user: User = Depends(require("dataset:quality"))
) -> object:
    report_id = quality.start_check(settings, user=user, version_id=version_id, config=body.model_dump())
    with session_scope(settings.database_url) as session:
        return QualityReportPublic.model_validate(quality.get_report(session, user=user, report_id=report_id))


@router.get("/version/{version_id}/quality", response_model=Page[QualityReportPublic])
def list_reports(
    version_id: IdPath,
    session: SessionDep,
    page: PageDep,
    status: DataJobStatus | None = None,
    user: User = Depends(require("dataset:query")),
) -> object:
    """The version's reports, newest first."""
    return quality.list_reports(session, user=user, version_id=version_id, status=status, request=page)


@router.get("/{dataset_id}/quality", response_model=Page[QualityReportPublic])
def list_dataset_reports(
    dataset_id: IdPath,
    session: SessionDep,
    page: PageDep,
    status: DataJobStatus | None = None,
    user: User = Depends(require("dataset:query")),
) -> object:
    """Reports of every version of the dataset, newest first."""
    return quality.list_reports(session, user=user, dataset_id=dataset_id, status=status, request=page)


@router.get("/quality/{report_id}", response_model=QualityReportPublic)
def get_report(report_id: IdPath, session: SessionDep, user: User = Depends(require("dataset:query"))) -> object:
    return quality.get_report(session, user=user, report_id=report_id)
