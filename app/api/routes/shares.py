"""Sharing datasets and models with other users (read access)."""

from fastapi import APIRouter, Depends, Response

from app.api.deps import IdPath, SessionDep, require
from app.api.schemas_auth import ShareRequest
from app.db.models import User
from app.services.identity import shares

router = APIRouter(tags=["sharing"])


def _routes(kind: str) -> None:
    permission = f"{kind}:share"

    @router.get(f"/{kind}/{{resource_id}}/share", name=f"list_{kind}_shares")
    def list_shares(resource_id: IdPath, session: SessionDep, user: User = Depends(require(permission))) -> list[str]:
        return shares.shared_with(session, user=user, kind=kind, resource_id=resource_id)

    @router.post(f"/{kind}/{{resource_id}}/share", name=f"share_{kind}", status_code=204)
    def share(
        resource_id: IdPath, body: ShareRequest, session: SessionDep, user: User = Depends(require(permission))
    ) -> Response:
        shares.share(session, user=user, kind=kind, resource_id=resource_id, username=body.username)
        return Response(status_code=204)

    @router.delete(f"/{kind}/{{resource_id}}/share/{{username}}", name=f"unshare_{kind}", status_code=204)
    def unshare(
        resource_id: IdPath, username: str, session: SessionDep, user: User = Depends(require(permission))
    ) -> Response:
        shares.unshare(session, user=user, kind=kind, resource_id=resource_id, username=username)
        return Response(status_code=204)


for _kind in shares.SHAREABLE:
    _routes(_kind)
