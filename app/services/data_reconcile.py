"""The data layer's step of the reconcile loop: expire idle uploads, close data jobs that Ray ended."""

from __future__ import annotations

from app.core.config import Settings
from app.services import pipelines, quality, uploads
from app.storage import ObjectStore


def reconcile(settings: Settings, store: ObjectStore) -> None:
    uploads.expire_stale(settings, store)
    quality.reconcile(settings)
    pipelines.reconcile(settings)
