"""Password hashing (argon2) and signed, expiring access tokens (JWT, HS256)."""

from __future__ import annotations

import datetime as dt

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.core.errors import AipError, ErrorCode

_hasher = PasswordHasher()
_ALGORITHM = "HS256"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_access_token(*, subject: str, secret_key: str, minutes: int) -> str:
    now = dt.datetime.now(dt.UTC)
    claims = {"sub": subject, "iat": now, "exp": now + dt.timedelta(minutes=minutes), "typ": "access"}
    return jwt.encode(claims, secret_key, algorithm=_ALGORITHM)


def decode_access_token(token: str, *, secret_key: str) -> str:
    """Returns the token's subject; raises UNAUTHENTICATED if it is forged, expired or not an access token."""
    try:
        claims = jwt.decode(token, secret_key, algorithms=[_ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError as e:
        raise AipError(ErrorCode.UNAUTHENTICATED, "Token expired: log in again.") from e
    except jwt.PyJWTError as e:
        raise AipError(ErrorCode.UNAUTHENTICATED, "Invalid token: log in again.") from e
    if claims.get("typ") != "access":
        raise AipError(ErrorCode.UNAUTHENTICATED, "Not an access token: log in again.")
    return str(claims["sub"])
