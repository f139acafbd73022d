"""Quality reports: a check of one dataset version runs as a Ray job (`python -m train_jobs.data_quality ID`)
over Ray Data; the report row holds counts, examples and a score. Training can refuse a version below a score."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.cluster import jobs as ray_jobs
from app.contracts import formats as dataset_formats
from app.contracts.status import RAY_JOB_ENDED, JobStatus
from app.core.config import Settings
from app.core.errors import AipError, invalid, not_found
from app.db.models import DatasetVersion, QualityReport, User, utcnow
from app.db.session import session_scope
from app.services.data import datasets
from app.services.data.quality_checks import QualityConfig, problems

JOB_MODULE = "train_jobs.data_quality"


def submission_id(report_id: int) -> str:
    return f"aip-quality-{report_id}"


def start_check(settings: Settings, *, user: User, version_id: int, config: dict[str, Any]) -> int:
    """Records a QUEUED report and hands the check to Ray; returns the report id at once."""
    parsed = QualityConfig.from_dict(config)
    with session_scope(settings.database_url) as session:
        version = datasets.get_version(session, user=user, version_id=version_id)
        if version.format not in dataset_formats.TABULAR:
            raise invalid(f"Version {version_id} is a {version.format} set; quality checks take tabular data.")
        found = problems(parsed, [c["name"] for c in version.columns])
        if found:
            raise invalid("The quality request is wrong: " + "; ".join(found) + ".")
        report = QualityReport(version_id=version.id, owner_id=user.id, config=config, status=JobStatus.QUEUED)
        session.add(report)
        session.flush()
        report_id = report.id
    try:
        ray_jobs.submit(settings, submission_id=submission_id(report_id), module=JOB_MODULE, args=[str(report_id)])
    except AipError:
        with session_scope(settings.database_url) as session:
            session.execute(delete(QualityReport).where(QualityReport.id == report_id))
        raise
    with session_scope(settings.database_url) as session:
        session.get_one(QualityReport, report_id).ray_job_id = submission_id(report_id)
    return report_id


def get_report(session: Session, *, user: User, report_id: int) -> QualityReport:
    report = session.get(QualityReport, report_id)
    if report is None:
        raise not_found("Quality report", report_id)
    datasets.get_version(session, user=user, version_id=report.version_id)  # readable version: readable report
    return report


def list_reports(
    session: Session,
    *,
    user: User,
    version_id: int | None = None,
    dataset_id: int | None = None,
    status: str | None = None,
) -> list[QualityReport]:
    """Reports of one version, or of every version of one dataset (newest first); 404 if the user cannot see it."""
    return datasets.rows_of_version_or_dataset(
        session,
        user=user,
        row_type=QualityReport,
        version_column=QualityReport.version_id,
        version_id=version_id,
        dataset_id=dataset_id,
        status=status,
    )


def latest_report(session: Session, version_id: int) -> QualityReport | None:
    return session.scalar(
        select(QualityReport)
        .where(QualityReport.version_id == version_id, QualityReport.status == JobStatus.SUCCEEDED)
        .order_by(QualityReport.id.desc())
        .limit(1)
    )


def check_training_allowed(session: Session, version: DatasetVersion, min_score: float | None) -> None:
    """Raises a 422 when `min_score` is set and the version's newest finished report scores below it."""
    if min_score is None:
        return
    report = latest_report(session, version.id)
    if report is None or report.score is None:
        raise invalid(
            f"Dataset version {version.id} has no finished quality report, and min_quality_score is {min_score}: "
            f"run a quality check first (POST /api/v1/dataset/version/{version.id}/quality)."
        )
    if report.score < min_score:
        raise invalid(
            f"Dataset version {version.id} scored {report.score:.3f} in quality report {report.id}, below "
            f"min_quality_score {min_score}: fix the data (e.g. with a preprocessing pipeline) or lower the threshold."
        )


def mark_running(session: Session, report_id: int) -> QualityReport:
    report = session.get_one(QualityReport, report_id)
    report.status = JobStatus.RUNNING
    return report


def finish(session: Session, report_id: int, *, result: dict[str, Any] | None, message: str = "") -> None:
    report = session.get_one(QualityReport, report_id)
    report.status = JobStatus.SUCCEEDED if result is not None else JobStatus.FAILED
    report.result = result
    report.score = result["score"] if result is not None else None
    report.message = message[:2000]
    report.finished_at = utcnow()


def reconcile(settings: Settings) -> None:
    """Fails reports whose Ray job ended without finishing them, or that Ray no longer knows."""
    with session_scope(settings.database_url) as session:
        open_reports = session.scalars(
            select(QualityReport).where(QualityReport.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        ).all()
        for report in open_reports:
            if not report.ray_job_id:
                continue
            state = ray_jobs.state(settings, report.ray_job_id)
            if state is None or state.status in RAY_JOB_ENDED:
                session.refresh(report)
                if report.status in (JobStatus.QUEUED, JobStatus.RUNNING):
                    reason = state.message if state else "Ray no longer knows this job (the cluster restarted)."
                    finish(session, report.id, result=None, message=reason or "The check's Ray job ended early.")
