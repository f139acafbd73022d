"""Serve application of the control plane: the FastAPI app as ingress, plus the reconcile loop.

Deployed by `aiplatform up` (or KubeRay's RayService) as `serve_deployments.api_ingress:build_app`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ray import serve
from ray.serve import Application
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.core.config import Settings, get_settings
from app.db.session import session_scope, upgrade_schema
from app.services.data import data_reconcile
from app.services.identity import users
from app.services.models import deployments
from app.services.training import jobs, queue_signal, scheduler, tuning, warm_workers
from app.storage import open_store

log = logging.getLogger(__name__)


@serve.deployment(name="ApiIngress", num_replicas=1, ray_actor_options={"num_cpus": 0})
@serve.ingress(create_app)
class ApiIngress:
    def __init__(self) -> None:
        settings = get_settings()
        upgrade_schema(settings.database_url)
        with session_scope(settings.database_url) as session:
            generated = users.ensure_admin(session, settings)
        if generated:  # started without `aiplatform up` (e.g. by a RayService): nobody saw the password
            log.warning("Created the admin user; its password is in %s", users.keep_admin_password(settings, generated))
        self._stop = threading.Event()
        threading.Thread(target=self._reconcile_loop, name="reconcile", daemon=True).start()

    def _reconcile_loop(self) -> None:
        """Keeps job and deployment rows aligned with Ray, from the first second after a (re)start."""
        settings = get_settings()
        store = open_store(settings)
        steps = {
            "training jobs": lambda: jobs.reconcile(settings, store),
            "training queue": lambda: scheduler.schedule(settings),
            "tuning runs": lambda: tuning.reconcile(settings, store),
            "deployments": lambda: _in_session(settings, deployments.reconcile),
            "data layer": lambda: data_reconcile.reconcile(settings, store),
            "warm workers": lambda: warm_workers.keep_warm(settings),
        }
        while not self._stop.is_set():
            for name, step in steps.items():
                try:
                    step()
                except Exception:
                    log.exception("Reconciling %s failed; retrying in %.0f s", name, settings.reconcile_interval_s)
            queue_signal.wait(settings.reconcile_interval_s)  # or less: queued work wakes it

    def __del__(self) -> None:
        self._stop.set()


def _in_session(settings: Settings, step: Callable[[Session, Settings], None]) -> None:
    """One unit of work per tick, for a step that takes its session from the caller."""
    with session_scope(settings.database_url) as session:
        step(session, settings)


def build_app(_args: dict[str, Any] | None = None) -> Application:
    return ApiIngress.bind()
