from fastapi import APIRouter, Depends, Response

from app.api.deps import IdPath, PageDep, SessionDep, SettingsDep, require
from app.api.schemas import Page
from app.api.schemas_auth import (
    AccountPublic,
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenPublic,
    PasswordChange,
    UserPublic,
)
from app.db.models import User
from app.services.identity import tokens, users

router = APIRouter(prefix="/account", tags=["account"])
Self = Depends(require("account:self"))


@router.get("", response_model=AccountPublic)
def me(user: User = Self) -> AccountPublic:
    return AccountPublic(**UserPublic.of(user).model_dump(), permissions=sorted(user.permissions))


@router.post("/password", status_code=204)
def change_password(body: PasswordChange, session: SessionDep, settings: SettingsDep, user: User = Self) -> Response:
    users.change_own_password(session, settings, user=user, current=body.current_password, new=body.new_password)
    return Response(status_code=204)


@router.get("/token", response_model=Page[ApiTokenPublic])
def list_tokens(session: SessionDep, page: PageDep, user: User = Self) -> object:
    """Sorts: id (default), name, created_at."""
    return tokens.list_api_tokens(session, user=user, request=page)


@router.post("/token", response_model=ApiTokenCreated, status_code=201)
def create_token(body: ApiTokenCreate, session: SessionDep, user: User = Self) -> ApiTokenCreated:
    row, token = tokens.create_api_token(
        session, user=user, name=body.name, scopes=body.scopes, expires_days=body.expires_days
    )
    return ApiTokenCreated(**ApiTokenPublic.model_validate(row).model_dump(), token=token)


@router.delete("/token/{token_id}", status_code=204)
def revoke_token(token_id: IdPath, session: SessionDep, user: User = Self) -> Response:
    tokens.revoke_api_token(session, user=user, token_id=token_id)
    return Response(status_code=204)
