import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Response, UploadFile
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import IdPath, PageDep, PrincipalDep, SessionDep, SettingsDep, StoreDep, require
from app.api.schemas import CodePublic, JobCreate, JobPublic, JobTransitionPublic, MetricsPage, Page
from app.contracts.status import JobStatus
from app.contracts.templates import CUSTOM_TEMPLATE
from app.core.config import Settings
from app.core.errors import AipError, forbidden, invalid
from app.core.permissions import CODE_RUN
from app.db.models import MAX_ID, TrainingJob, User
from app.db.session import session_scope
from app.services.data import datasets
from app.services.models import registry
from app.services.training import custom_code, job_metrics, jobs
from app.storage import ObjectStore

router = APIRouter(prefix="/training/job", tags=["training"])
code_router = APIRouter(prefix="/training/code", tags=["training"])

DETAIL_MAX_POINTS = 500  # a job's detail carries a downsampled history; /metrics pages through all of it
LOG_POLL_S = 1.0


def _public(session: SessionDep, job: TrainingJob, *, detail: bool = True) -> JobPublic:
    public = JobPublic.model_validate(job)
    if detail:
        public.metrics = job_metrics.metric_history(session, job.id, max_points=DETAIL_MAX_POINTS)
        public.transitions = [JobTransitionPublic.model_validate(t) for t in jobs.transitions(session, job.id)]
    version = registry.version_for_job(session, job.id)
    public.model_version_id = version.id if version else None
    return public


def _check_code_run(principal: PrincipalDep, template: str) -> None:
    """Custom code runs on the cluster's workers: it needs its own permission beside training:job:create."""
    if template == CUSTOM_TEMPLATE and not principal.allows(CODE_RUN):
        raise forbidden(
            f"Running custom code needs the permission {CODE_RUN!r} (admins hold it; an admin may grant it to a "
            "role): use a built-in template instead, or ask an admin."
        )


@router.post("", response_model=JobPublic, status_code=202)
def create_job(
    body: JobCreate,
    settings: SettingsDep,
    store: StoreDep,
    principal: PrincipalDep,
    user: User = Depends(require("training:job:create")),
) -> JobPublic:
    _check_code_run(principal, body.template)
    with session_scope(settings.database_url) as session:
        version_id = resolve_version_id(session, user, body.dataset_id, body.dataset_version_id)
        dataset_name = datasets.get_version(session, user=user, version_id=version_id).dataset.name
    spec = jobs.JobSpec(
        name=body.name or f"{dataset_name}-{body.template}".replace(" ", "-"),
        dataset_version_id=version_id,
        template=body.template,
        config=body.train_config(),
        priority=body.priority,
        start=body.start,
        min_quality_score=body.min_quality_score,
        code_hash=body.code_hash,
    )
    job_id = jobs.create_job(settings, store, user=user, spec=spec)
    with session_scope(settings.database_url) as session:
        return _public(session, jobs.get_job(session, user=user, job_id=job_id))


def resolve_version_id(session: SessionDep, user: User, dataset_id: int | None, dataset_version_id: int | None) -> int:
    if dataset_version_id is not None and dataset_id is None:
        return dataset_version_id
    if dataset_id is None or dataset_version_id is not None:
        raise invalid("Give exactly one of dataset_id (newest version) or dataset_version_id.")
    dataset = datasets.get_dataset(session, user=user, dataset_id=dataset_id)
    if not dataset.versions:
        raise invalid(f"Dataset {dataset.id} has no version yet: upload a file first.")
    return dataset.versions[-1].id


@code_router.post("", response_model=CodePublic, status_code=201)
async def upload_code(
    file: UploadFile, settings: SettingsDep, store: StoreDep, _user: User = Depends(require(CODE_RUN))
) -> CodePublic:
    """Uploads training code (.py, or .zip with train.py) defining `train_loop_per_worker(config)`."""
    data = await file.read(settings.code_max_upload_bytes + 1)
    # Inspecting, parsing and hashing take a while: in a thread, so the event loop keeps answering others.
    stored = await run_in_threadpool(custom_code.store_code, settings, store, file_name=file.filename or "", data=data)
    return CodePublic(code_hash=stored.code_hash, file_name=stored.file_name, size_bytes=stored.size_bytes)


@router.get("", response_model=Page[JobPublic])
def list_jobs(
    session: SessionDep,
    page: PageDep,
    status: JobStatus | None = None,
    name: str | None = Query(default=None, max_length=128, description="Jobs whose name contains this."),
    dataset_version_id: int | None = Query(default=None, ge=1, le=MAX_ID),
    user: User = Depends(require("training:job:list")),
) -> Page[JobPublic]:
    """Newest first; sorts: id, name, created_at, status, priority. Without metrics and transitions (see a job)."""
    found = jobs.list_jobs(
        session, user=user, request=page, status=status, name=name, dataset_version_id=dataset_version_id
    )
    versions = registry.version_ids_for_jobs(session, [job.id for job in found.items])
    items = []
    for job in found.items:
        public = JobPublic.model_validate(job)
        public.model_version_id = versions.get(job.id)
        items.append(public)
    return Page[JobPublic](items=items, total=found.total, limit=found.limit, offset=found.offset)


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: IdPath, session: SessionDep, user: User = Depends(require("training:job:query"))) -> JobPublic:
    return _public(session, jobs.get_job(session, user=user, job_id=job_id))


@router.post("/{job_id}/start", response_model=JobPublic)
def start_job(
    job_id: IdPath, session: SessionDep, principal: PrincipalDep, user: User = Depends(require("training:job:create"))
) -> JobPublic:
    _check_code_run(principal, jobs.get_job(session, user=user, job_id=job_id).template)
    return _public(session, jobs.start_job(session, user=user, job_id=job_id))


@router.post("/{job_id}/stop", response_model=JobPublic)
def stop_job(
    job_id: IdPath, session: SessionDep, settings: SettingsDep, user: User = Depends(require("training:job:stop"))
) -> JobPublic:
    return _public(session, jobs.stop_job(settings, session, user=user, job_id=job_id))


@router.post("/{job_id}/retry", response_model=JobPublic)
def retry_job(
    job_id: IdPath, session: SessionDep, principal: PrincipalDep, user: User = Depends(require("training:job:retry"))
) -> JobPublic:
    _check_code_run(principal, jobs.get_job(session, user=user, job_id=job_id).template)
    return _public(session, jobs.retry_job(session, user=user, job_id=job_id))


@router.delete("/{job_id}", status_code=204)
def delete_job(
    job_id: IdPath, settings: SettingsDep, store: StoreDep, user: User = Depends(require("training:job:remove"))
) -> Response:
    jobs.delete_job(settings, store, user=user, job_id=job_id)
    return Response(status_code=204)


def history_query(
    since: dt.datetime | None = Query(default=None, description="Steps recorded at or after (UTC)."),
    until: dt.datetime | None = Query(default=None, description="Steps recorded at or before (UTC)."),
    offset: int = Query(default=0, ge=0),
    limit: int | None = Query(default=None, ge=1, le=100_000),
    max_points: int | None = Query(default=None, ge=1, le=10_000, description="Downsample to this many steps."),
) -> dict[str, Any]:
    """The selection, paging and downsampling of a metric history (epochs or training steps)."""
    return {
        "since": _naive_utc(since),
        "until": _naive_utc(until),
        "offset": offset,
        "limit": limit,
        "max_points": max_points,
    }


@router.get("/{job_id}/metrics", response_model=MetricsPage)
def get_metrics(
    job_id: IdPath,
    session: SessionDep,
    query: dict[str, Any] = Depends(history_query),
    user: User = Depends(require("training:job:query")),
) -> MetricsPage:
    jobs.get_job(session, user=user, job_id=job_id)
    points = job_metrics.metric_history(session, job_id, **query)
    return MetricsPage(job_id=job_id, total_steps=job_metrics.count_steps(session, job_id), points=points)


@router.get("/{job_id}/steps", response_model=MetricsPage)
def get_training_steps(
    job_id: IdPath,
    session: SessionDep,
    query: dict[str, Any] = Depends(history_query),
    user: User = Depends(require("training:job:query")),
) -> MetricsPage:
    """Loss, learning rate and throughput every `log_every_n_steps` batches (rank 0's), between the epoch metrics."""
    jobs.get_job(session, user=user, job_id=job_id)
    total, points = job_metrics.training_step_history(session, job_id, **query)
    return MetricsPage(job_id=job_id, total_steps=total, points=points)


@router.get("/{job_id}/usage")
def get_usage(
    job_id: IdPath,
    session: SessionDep,
    since: dt.datetime | None = Query(default=None, description="Samples taken at or after (UTC)."),
    limit: int = Query(default=1000, ge=1, le=100_000, description="The latest samples, at most this many."),
    user: User = Depends(require("training:job:query")),
) -> list[dict[str, Any]]:
    """The job's workers' resource use, sampled every `metrics.usage_sample_s` seconds while it runs."""
    jobs.get_job(session, user=user, job_id=job_id)
    return job_metrics.usage_history(session, job_id, since=_naive_utc(since), limit=limit)


def _naive_utc(value: dt.datetime | None) -> dt.datetime | None:
    # Rows store naive UTC; a client may send an offset.
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


@router.get("/{job_id}/logs", response_class=PlainTextResponse)
def get_logs(
    job_id: IdPath,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    user: User = Depends(require("training:job:query")),
) -> str:
    return jobs.job_logs(settings, store, jobs.get_job(session, user=user, job_id=job_id))


@router.get("/{job_id}/logs/stream")
def stream_logs(
    job_id: IdPath,
    settings: SettingsDep,
    store: StoreDep,
    session: SessionDep,
    user: User = Depends(require("training:job:query")),
) -> StreamingResponse:
    """Server-sent events: one `data:` event per log line while the job runs, then `event: end` with its status."""
    jobs.get_job(session, user=user, job_id=job_id)  # 404 now, not inside the stream
    return StreamingResponse(
        _log_events(settings, store, user, job_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _log_events(settings: Settings, store: ObjectStore, user: User, job_id: int) -> Iterator[str]:
    sent = 0
    while True:
        with session_scope(settings.database_url) as session:
            job = jobs.get_job(session, user=user, job_id=job_id)
            try:
                text = jobs.job_logs(settings, store, job)
            except AipError:
                text = ""
            status = JobStatus(job.status)
            # Final once the reconcile loop kept the logs (or the job never reached Ray).
            final = status.is_terminal and (job.logs_key is not None or job.ray_job_id is None)
        if len(text) < sent:
            sent = 0  # a retry started a new attempt with fresh logs
        end = len(text) if final else text.rfind("\n", sent) + 1
        if end > sent:
            for line in text[sent:end].splitlines():
                yield f"data: {line}\n\n"
            sent = end
        else:
            yield ": waiting\n\n"  # keeps proxies from closing an idle stream
        if final:
            yield f"event: end\ndata: {status.value}\n\n"
            return
        time.sleep(LOG_POLL_S)
