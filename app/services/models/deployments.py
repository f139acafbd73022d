"""Deployments: a model version served by its own Ray Serve application, called through the control plane."""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cluster import serve_control
from app.contracts import image_cnn
from app.contracts.status import DeploymentStatus
from app.core.config import Settings
from app.core.errors import AipError, ErrorCode, conflict, forbidden, hide_not_found, invalid, not_found
from app.db.models import Deployment, ModelVersion, User
from app.db.paging import PageOf, PageRequest, page
from app.db.session import session_scope
from app.services.identity.access import can_read, can_write, readable
from app.services.models import registry

SERVE_TO_STATUS = {
    "RUNNING": DeploymentStatus.RUNNING,
    "DEPLOY_FAILED": DeploymentStatus.FAILED,
    "UNHEALTHY": DeploymentStatus.FAILED,
}


def desired_apps(session: Session) -> list[serve_control.ModelApp]:
    rows = session.scalars(select(Deployment).where(Deployment.status != DeploymentStatus.DELETING))
    return [
        serve_control.ModelApp(
            name=d.app_name,
            model_version_id=d.model_version_id,
            artifact_key=session.get_one(ModelVersion, d.model_version_id).artifact_key,
            num_replicas=d.num_replicas,
        )
        for d in rows
    ]


def apply_desired(session: Session, settings: Settings) -> None:
    """Pushes the deployments the database holds to Serve (one config for all of them)."""
    serve_control.apply(settings, desired_apps(session))


def deploy(session: Session, settings: Settings, *, user: User, model_version_id: int, num_replicas: int) -> Deployment:
    registry.get_version(session, user=user, version_id=model_version_id)
    deployment = Deployment(model_version_id=model_version_id, owner_id=user.id, num_replicas=num_replicas)
    session.add(deployment)
    # Committed before Serve hears of it: Serve's config is built from committed rows, so a deploy or reconcile
    # running at the same time cannot push a config without this one; nor does Serve's answer hold a write lock.
    session.commit()
    try:
        apply_desired(session, settings)
    except AipError:
        session.delete(deployment)
        session.commit()
        raise
    return deployment


def get_deployment(session: Session, *, user: User, deployment_id: int) -> Deployment:
    deployment = session.get(Deployment, deployment_id)
    if deployment is None or not can_read(user, deployment):
        raise not_found("Deployment", deployment_id)
    return deployment


def list_deployments(
    session: Session, *, user: User, request: PageRequest = PageRequest(), status: str | None = None
) -> PageOf[Deployment]:
    query = select(Deployment).where(readable(user, Deployment))
    if status:
        query = query.where(Deployment.status == status)
    sortable = {"id": Deployment.id, "created_at": Deployment.created_at, "status": Deployment.status}
    return page(session, query, request, sortable=sortable, default_sort="id", tiebreak=Deployment.id)


def undeploy(session: Session, settings: Settings, *, user: User, deployment_id: int) -> None:
    deployment = get_deployment(session, user=user, deployment_id=deployment_id)
    if not can_write(user, deployment):
        raise forbidden(f"Deployment {deployment_id} is not yours to delete.")
    deployment.status = DeploymentStatus.DELETING
    session.commit()  # as in deploy: the config pushed to Serve is built from committed rows
    apply_desired(session, settings)
    session.delete(deployment)


def check_rows(signature: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    if not rows:
        raise invalid("Send at least one row: {'rows': [{column: value, ...}]}.")
    if signature.get("task") == image_cnn.IMAGE_TASK:  # decoded here too, so a bad image is a 422, not a 500
        try:
            image_cnn.decode_rows(rows, signature["image_size"], signature["channels"])
        except image_cnn.InvalidData as e:
            raise invalid(str(e)) from e
        return
    inputs = signature["inputs"]
    for i, row in enumerate(rows):
        missing = [c for c in inputs if c not in row]
        if missing:
            raise invalid(f"Row {i} lacks the model's input columns {missing}; every row needs all of {inputs}.")
        # A preprocessing pipeline in front of the model converts and encodes raw values itself.
        bad = [] if signature.get("pipeline_state_key") else [c for c in inputs if not _is_number(row[c])]
        if bad:
            raise invalid(f"Row {i} has non-numeric values in {bad}; the model takes numbers (or null).")


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


async def predict(settings: Settings, *, user: User, deployment_id: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The model's answer for `rows`: labels, probabilities and the model's classes."""
    # The database read, the rows' check and Serve's handle lookup (a call to its controller) block: in a thread,
    # so the API's event loop goes on serving other requests meanwhile.
    handle, classes = await anyio.to_thread.run_sync(partial(_prepare, settings, user, deployment_id, rows))
    result = await handle.predict.remote(rows)
    return {**result, "classes": classes}


def _prepare(settings: Settings, user: User, deployment_id: int, rows: list[dict[str, Any]]) -> tuple[Any, list[Any]]:
    # A unit of work of its own, ended before the model is awaited: reading through the request's session would
    # flush its pending write (an API token's last use) and hold SQLite's write lock for the whole prediction.
    with session_scope(settings.database_url) as session:
        deployment = get_deployment(session, user=user, deployment_id=deployment_id)
        with hide_not_found("Deployment", deployment_id):
            signature = registry.get_version(session, user=user, version_id=deployment.model_version_id).signature
    if deployment.status != DeploymentStatus.RUNNING:
        raise conflict(f"Deployment {deployment.id} is {deployment.status}; wait until it is RUNNING.")
    check_rows(signature, rows)
    from ray import serve  # lazily: Serve's client is only needed where predictions run (the API replica)

    return serve.get_app_handle(deployment.app_name), signature["classes"]


def reconcile(session: Session, settings: Settings) -> None:
    """Moves DEPLOYING rows to RUNNING or FAILED as Serve reports; restores apps Serve lost."""
    rows = session.scalars(select(Deployment).where(Deployment.status != DeploymentStatus.DELETING)).all()
    if not rows:  # nothing to align: spare Serve's status call (the reconcile loop runs every few seconds)
        return
    states = serve_control.statuses(settings)
    lost = False
    for d in rows:
        app = states.get(d.app_name)
        if app is None:
            lost = True
            continue
        status = SERVE_TO_STATUS.get(app["status"])
        if status and status != d.status:
            d.status = status
            d.message = app["message"] or ""
    if lost:
        session.commit()  # the statuses read stand even if Serve refuses the restore
        try:
            apply_desired(session, settings)
        except AipError as e:
            raise AipError(ErrorCode.UNAVAILABLE, f"Could not restore lost deployments: {e.message}") from e
