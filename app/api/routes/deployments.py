from fastapi import APIRouter, Depends, Response

from app.api.deps import IdPath, PageDep, SessionDep, SettingsDep, require
from app.api.schemas import DeploymentPublic, Page, PredictRequest, PredictResponse
from app.contracts.status import DeploymentStatus
from app.db.models import User
from app.services.models import deployments

router = APIRouter(prefix="/deployment", tags=["deployments"])


@router.get("", response_model=Page[DeploymentPublic])
def list_deployments(
    session: SessionDep,
    page: PageDep,
    status: DeploymentStatus | None = None,
    user: User = Depends(require("deployment:list")),
) -> object:
    """Sorts: id (default), created_at, status."""
    return deployments.list_deployments(session, user=user, request=page, status=status)


@router.get("/{deployment_id}", response_model=DeploymentPublic)
def get_deployment(
    deployment_id: IdPath, session: SessionDep, user: User = Depends(require("deployment:query"))
) -> object:
    return deployments.get_deployment(session, user=user, deployment_id=deployment_id)


@router.delete("/{deployment_id}", status_code=204)
def delete_deployment(
    deployment_id: IdPath,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("deployment:remove")),
) -> Response:
    deployments.undeploy(session, settings, user=user, deployment_id=deployment_id)
    return Response(status_code=204)


@router.post("/{deployment_id}/predict", response_model=PredictResponse)
async def predict(
    deployment_id: IdPath,
    body: PredictRequest,
    settings: SettingsDep,
    user: User = Depends(require("deployment:predict")),
) -> PredictResponse:
    # No SessionDep: the service reads in a unit of work of its own that ends before the model is awaited.
    result = await deployments.predict(settings, user=user, deployment_id=deployment_id, rows=body.rows)
    return PredictResponse(labels=result["labels"], probabilities=result["probabilities"], classes=result["classes"])
