"""Serve application of the control plane: the FastAPI app as ingress; it also starts the reconcile loop
(app.services.reconcile).

Deployed by `aiplatform up` (or KubeRay's RayService) as `serve_deployments.api_ingress:build_app`.
"""

from __future__ import annotations

import logging
from typing import Any

from ray import serve
from ray.serve import Application

from app.api.main import create_app
from app.core.config import get_settings
from app.db.session import session_scope, upgrade_schema
from app.services.identity import users
from app.services.reconcile import Reconciler

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
        self._reconciler = Reconciler(settings)
        self._reconciler.start()

    def __del__(self) -> None:
        self._reconciler.stop(timeout_s=0)


def build_app(_args: dict[str, Any] | None = None) -> Application:
    return ApiIngress.bind()
