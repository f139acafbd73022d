"""Ray Serve control through its declarative REST API: the whole set of applications is one config.

The control plane and every model deployment are applications of the same config, built from the database
(the source of truth), so `aiplatform up` after a restart brings back exactly the deployments the database holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx

from app.core.config import Settings
from app.core.errors import AipError, ErrorCode

CONTROL_PLANE_APP = "aiplatform"


@dataclass(frozen=True)
class ModelApp:
    name: str
    model_version_id: int
    artifact_key: str
    num_replicas: int


def build_config(settings: Settings, model_apps: list[ModelApp]) -> dict[str, Any]:
    runtime_env = {"env_vars": settings.worker_env()}
    apps: list[dict[str, Any]] = [
        {
            "name": CONTROL_PLANE_APP,
            "route_prefix": "/",
            "import_path": "serve_deployments.api_ingress:build_app",
            "runtime_env": runtime_env,
        }
    ]
    for app in sorted(model_apps, key=lambda a: a.name):
        apps.append(
            {
                "name": app.name,
                "route_prefix": None,  # reachable only through the control plane, which checks the caller
                "import_path": "serve_deployments.model_server:build_app",
                "args": {"model_version_id": app.model_version_id, "artifact_key": app.artifact_key},
                "runtime_env": runtime_env,
                "deployments": [{"name": "ModelServer", "num_replicas": app.num_replicas}],
            }
        )
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": settings.http_host, "port": settings.http_port},
        "applications": apps,
    }


@cache
def _dashboard() -> httpx.Client:
    """One connection pool per process: the reconcile loop asks for the statuses every few seconds, and a fresh
    client each time loads the system's CA certificates again (most of that loop's CPU when the platform idles)."""
    return httpx.Client()


def apply(settings: Settings, model_apps: list[ModelApp]) -> None:
    body = build_config(settings, model_apps)
    try:
        response = _dashboard().put(f"{settings.dashboard_url}/api/serve/applications/", json=body, timeout=60)
    except httpx.HTTPError as e:
        raise AipError(ErrorCode.UNAVAILABLE, f"Ray's dashboard at {settings.dashboard_url} did not answer: {e}") from e
    if response.status_code >= 400:
        raise AipError(ErrorCode.UNAVAILABLE, f"Ray Serve refused the config: {response.text[:500]}")


def statuses(settings: Settings) -> dict[str, dict[str, Any]]:
    """Application name -> {status, message} as Serve reports it."""
    response = _dashboard().get(f"{settings.dashboard_url}/api/serve/applications/", timeout=30)
    response.raise_for_status()
    apps = response.json().get("applications") or {}
    return {name: {"status": a.get("status"), "message": a.get("message", "")} for name, a in apps.items()}
