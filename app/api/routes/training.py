from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from app.api.deps import SessionDep, SettingsDep, StoreDep, require
from app.api.schemas import JobCreate, JobPublic
from app.core.errors import invalid
from app.db.models import TrainingJob, User
from app.db.session import session_scope
from app.services import datasets, models, training

router = APIRouter(prefix="/training/job", tags=["training"])


def _public(session: SessionDep, job: TrainingJob) -> JobPublic:
    public = JobPublic.model_validate(job)
    public.metrics = training.metric_history(session, job.id)
    version = models.version_for_job(session, job.id)
    public.model_version_id = version.id if version else None
    return public


@router.post("", response_model=JobPublic, status_code=202)
def create_job(
    body: JobCreate,
    settings: SettingsDep,
    store: StoreDep,
    user: User = Depends(require("training:job:create")),
) -> JobPublic:
    with session_scope(settings.database_url) as session:
        version_id = _version_id(session, user, body)
        dataset_name = datasets.get_version(session, user=user, version_id=version_id).dataset.name
    spec = training.JobSpec(
        name=body.name or f"{dataset_name}-{body.template}".replace(" ", "-"),
        dataset_version_id=version_id,
        template=body.template,
        target_column=body.target_column,
        epochs=body.epochs,
        batch_size=body.batch_size,
        learning_rate=body.learning_rate,
        num_workers=body.num_workers,
    )
    job_id = training.create_job(settings, store, user=user, spec=spec)
    with session_scope(settings.database_url) as session:
        return _public(session, training.get_job(session, user=user, job_id=job_id))


def _version_id(session: SessionDep, user: User, body: JobCreate) -> int:
    if (body.dataset_id is None) == (body.dataset_version_id is None):
        raise invalid("Give exactly one of dataset_id (newest version) or dataset_version_id.")
    if body.dataset_version_id is not None:
        return body.dataset_version_id
    dataset = datasets.get_dataset(session, user=user, dataset_id=body.dataset_id)
    if not dataset.versions:
        raise invalid(f"Dataset {dataset.id} has no version yet: upload a file first.")
    return dataset.versions[-1].id


@router.get("", response_model=list[JobPublic])
def list_jobs(session: SessionDep, user: User = Depends(require("training:job:list"))) -> list[JobPublic]:
    return [JobPublic.model_validate(job) for job in training.list_jobs(session, user=user)]


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: int, session: SessionDep, user: User = Depends(require("training:job:query"))) -> JobPublic:
    return _public(session, training.get_job(session, user=user, job_id=job_id))


@router.get("/{job_id}/metrics")
def get_metrics(job_id: int, session: SessionDep, user: User = Depends(require("training:job:query"))) -> list[dict]:
    training.get_job(session, user=user, job_id=job_id)
    return training.metric_history(session, job_id)


@router.get("/{job_id}/logs", response_class=PlainTextResponse)
def get_logs(
    job_id: int,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    user: User = Depends(require("training:job:query")),
) -> str:
    return training.job_logs(settings, store, training.get_job(session, user=user, job_id=job_id))


@router.post("/{job_id}/stop", response_model=JobPublic)
def stop_job(
    job_id: int, session: SessionDep, settings: SettingsDep, user: User = Depends(require("training:job:stop"))
) -> JobPublic:
    return _public(session, training.stop_job(settings, session, user=user, job_id=job_id))
