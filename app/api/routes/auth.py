from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from app.api.deps import PrincipalDep, SessionDep, SettingsDep, client_ip, require
from app.api.schemas_auth import LoginPublic, RefreshRequest
from app.core.errors import invalid
from app.db.models import User
from app.services.identity import tokens, users

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login", response_model=LoginPublic)
def login(
    request: Request, session: SessionDep, settings: SettingsDep, form: OAuth2PasswordRequestForm = Depends()
) -> LoginPublic:
    ip = client_ip(request)
    request.state.username = form.username[:64]
    request.state.permission = "auth:login"
    user = users.authenticate(session, settings, username=form.username, password=form.password, client_ip=ip)
    request.state.user_id = user.id
    return LoginPublic(**vars(tokens.start_session(session, settings, user=user, client_ip=ip)))


@router.post("/refresh", response_model=LoginPublic)
def refresh(body: RefreshRequest, request: Request, session: SessionDep, settings: SettingsDep) -> LoginPublic:
    request.state.permission = "auth:refresh"
    return LoginPublic(**vars(tokens.refresh_session(session, settings, refresh_token=body.refresh_token)))


@router.post("/logout", status_code=204)
def logout(session: SessionDep, principal: PrincipalDep, _: User = Depends(require("account:self"))) -> Response:
    if principal.session_id is None:
        raise invalid("API tokens are not logins: revoke the token instead (DELETE /api/v1/account/token/{id}).")
    tokens.revoke_session(session, session_id=principal.session_id)
    return Response(status_code=204)
