from fastapi import APIRouter, Depends, Query

from app.api.deps import IdPath, PageDep, SessionDep, SettingsDep, require
from app.api.schemas import DeploymentPublic, DeployRequest, ModelPublic, ModelVersionPublic, Page
from app.db.models import User
from app.services.models import deployments, registry

router = APIRouter(prefix="/model", tags=["models"])


@router.get("", response_model=Page[ModelPublic])
def list_models(
    session: SessionDep,
    page: PageDep,
    name: str | None = Query(default=None, max_length=128, description="Models whose name contains this."),
    user: User = Depends(require("model:list")),
) -> object:
    """Sorts: id (default), name, created_at."""
    return registry.list_models(session, user=user, request=page, name=name)


@router.get("/version/{version_id}", response_model=ModelVersionPublic)
def get_version(version_id: IdPath, session: SessionDep, user: User = Depends(require("model:query"))) -> object:
    return registry.get_version(session, user=user, version_id=version_id)


@router.post("/{version_id}/deploy", response_model=DeploymentPublic, status_code=202)
def deploy(
    version_id: IdPath,
    session: SessionDep,
    settings: SettingsDep,
    body: DeployRequest | None = None,
    user: User = Depends(require("model:deploy")),
) -> DeploymentPublic:
    body = body or DeployRequest()
    deployment = deployments.deploy(
        session, settings, user=user, model_version_id=version_id, num_replicas=body.num_replicas
    )
    return DeploymentPublic.model_validate(deployment)
