"""The data layer's step of the reconcile loop: expire idle uploads, close data jobs that Ray ended, and profile
new versions (in a background worker of its own, so a big file does not hold the loop up)."""

from __future__ import annotations

from app.core.config import Settings
from app.services.data import pipelines, profiles, quality, uploads
from app.storage import ObjectStore


def reconcile(settings: Settings, store: ObjectStore) -> None:
    uploads.expire_stale(settings, store)
    quality.reconcile(settings)
    pipelines.reconcile(settings)
    profiles.start_background(settings, store)
