from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from app.api.deps import CurrentUser, SessionDep, SettingsDep
from app.api.schemas import Token, UserPublic
from app.services import users

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login", response_model=Token)
def login(session: SessionDep, settings: SettingsDep, form: OAuth2PasswordRequestForm = Depends()) -> Token:
    return Token(access_token=users.login(session, settings, username=form.username, password=form.password))


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)
