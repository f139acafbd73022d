"""SQLAlchemy 2 models: the SQL database is the platform's source of truth; Ray only executes. One module per
domain; importing the package registers every table on `Base.metadata`, which Alembic reads."""

from app.db.models.base import MAX_ID, Base, utcnow
from app.db.models.data import Dataset, DatasetVersion, PipelineRun, QualityReport, UploadChunk, UploadSession
from app.db.models.identity import ApiToken, AuthSession, LoginThrottle, Role, User, user_roles
from app.db.models.registry import Deployment, Model, ModelVersion
from app.db.models.system import AuditEntry, Lease, Share, SystemSetting
from app.db.models.training import (
    JobMetric,
    JobStepMetric,
    JobUsageSample,
    RunTransition,
    TrainingJob,
    TuningRun,
    TuningTrial,
)

__all__ = [
    "MAX_ID",
    "Base",
    "utcnow",
    "User",
    "Role",
    "AuthSession",
    "ApiToken",
    "LoginThrottle",
    "user_roles",
    "AuditEntry",
    "SystemSetting",
    "Lease",
    "Share",
    "Dataset",
    "DatasetVersion",
    "UploadSession",
    "UploadChunk",
    "PipelineRun",
    "QualityReport",
    "TrainingJob",
    "TuningRun",
    "TuningTrial",
    "RunTransition",
    "JobMetric",
    "JobStepMetric",
    "JobUsageSample",
    "Model",
    "ModelVersion",
    "Deployment",
]
