"""Quality reports: a check of one dataset version runs as a Ray job (`python -m train_jobs.data_quality ID`)
over Ray Data; the report row holds counts, examples and a score. Training can refuse a version below a score."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.contracts import formats as dataset_formats
from app.contracts.status import JobStatus
from app.core.config import Settings
from app.core.errors import hide_not_found, invalid, not_found
from app.db.models import DatasetVersion, QualityReport, User
from app.db.paging import PageOf, PageRequest
from app.db.session import session_scope
from app.runs import lifecycle
from app.runs.kinds import QUALITY_REPORT
from app.services.data import datasets
from app.services.data.quality_checks import QualityConfig, problems


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
        lifecycle.created(session, QUALITY_REPORT, report, f"Requested by {user.username}.")
        report_id = report.id
    lifecycle.submit_new(settings, QUALITY_REPORT, report_id, [str(report_id)])
    return report_id


def get_report(session: Session, *, user: User, report_id: int) -> QualityReport:
    report = session.get(QualityReport, report_id)
    if report is None:
        raise not_found("Quality report", report_id)
    with hide_not_found("Quality report", report_id):  # readable version: readable report; its id is not told
        datasets.get_version(session, user=user, version_id=report.version_id)
    return report


def list_reports(
    session: Session,
    *,
    user: User,
    version_id: int | None = None,
    dataset_id: int | None = None,
    status: str | None = None,
    request: PageRequest = PageRequest(),
) -> PageOf[QualityReport]:
    """Reports of one version, or of every version of one dataset (newest first); 404 if the user cannot see it."""
    return datasets.rows_of_version_or_dataset(
        session,
        user=user,
        row_type=QualityReport,
        version_column=QualityReport.version_id,
        version_id=version_id,
        dataset_id=dataset_id,
        status=status,
        request=request,
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


def record_result(report: QualityReport, result: dict[str, Any]) -> None:
    """The check's result on its report (recorded with the report's success: train_jobs.driver)."""
    report.result = result
    report.score = result["score"]
