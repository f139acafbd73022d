"""Model registry: models and their versions, with lineage to the job and dataset version that made them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from app.core.errors import not_found
from app.db.models import Model, ModelVersion, TrainingJob, TuningRun, User
from app.db.paging import PageOf, PageRequest, page
from app.services.identity.access import can_read, readable


def register_version(
    session: Session,
    *,
    job: TrainingJob | TuningRun,
    artifact_key: str,
    signature: dict[str, Any],
    metrics: dict[str, float],
    lineage: dict[str, Any] | None = None,
) -> ModelVersion:
    """Adds a DRAFT version to the model named after the job or tuning run (created on first use).

    Its lineage records what made it: dataset version, pipeline state, code hash, the job's full config, and
    whatever the caller adds (final and best metrics, checkpoint location).
    """
    model = session.scalar(select(Model).where(Model.owner_id == job.owner_id, Model.name == job.name))
    if model is None:
        model = Model(name=job.name, owner_id=job.owner_id)
        session.add(model)
        session.flush()
    source = {"training_job_id": job.id} if isinstance(job, TrainingJob) else {"tuning_run_id": job.id}
    number = (session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)) or 0) + 1
    version = ModelVersion(
        model_id=model.id,
        version=number,
        stage="DRAFT",
        training_job_id=job.id if isinstance(job, TrainingJob) else None,
        dataset_version_id=job.dataset_version_id,
        template=job.template,
        artifact_key=artifact_key,
        signature=signature,
        metrics=metrics,
        lineage={
            **source,
            "dataset_version_id": job.dataset_version_id,
            "pipeline": signature.get("pipeline"),
            "template": job.template,
            "code_hash": job.code_hash,
            "config": job.config,
            **(lineage or {}),
        },
    )
    session.add(version)
    session.flush()
    return version


def list_models(
    session: Session, *, user: User, request: PageRequest = PageRequest(), name: str | None = None
) -> PageOf[Model]:
    query = select(Model).where(readable(user, Model)).options(selectinload(Model.versions))
    if name:
        query = query.where(Model.name.contains(name, autoescape=True))
    sortable = {"id": Model.id, "name": Model.name, "created_at": Model.created_at}
    return page(session, query, request, sortable=sortable, default_sort="id", tiebreak=Model.id)


def get_version(session: Session, *, user: User, version_id: int) -> ModelVersion:
    version = session.get(ModelVersion, version_id)
    if version is None or not can_read(user, version.model):
        raise not_found("Model version", version_id)
    return version


def version_for_job(session: Session, job_id: int) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.training_job_id == job_id))


def version_ids_for_jobs(session: Session, job_ids: list[int]) -> dict[int, int]:
    """The model version each of these jobs registered (one query for a page of jobs), by job id."""
    if not job_ids:
        return {}
    found = session.execute(
        select(ModelVersion.training_job_id, ModelVersion.id).where(ModelVersion.training_job_id.in_(job_ids))
    )
    return {job_id: version_id for job_id, version_id in found if job_id is not None}
