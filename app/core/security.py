"""Password hashing (argon2), signed expiring access tokens (JWT, HS256) and opaque token hashing."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

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


def hash_token(token: str) -> str:
    """Opaque tokens are long random strings, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    session_id: int


def create_access_token(*, user_id: int, session_id: int, secret_key: str, minutes: int) -> str:
    now = dt.datetime.now(dt.UTC)
    claims = {
        "sub": str(user_id),
        "sid": session_id,
        "iat": now,
        "exp": now + dt.timedelta(minutes=minutes),
        "typ": "access",
    }
    return jwt.encode(claims, secret_key, algorithm=_ALGORITHM)


def decode_access_token(token: str, *, secret_key: str) -> AccessClaims:
    """Raises UNAUTHENTICATED if the token is forged, expired or not an access token."""
    try:
        claims = jwt.decode(token, secret_key, algorithms=[_ALGORITHM], options={"require": ["exp", "sub", "sid"]})
    except jwt.ExpiredSignatureError as e:
        raise AipError(ErrorCode.UNAUTHENTICATED, "Token expired: refresh it or log in again.") from e
    except jwt.PyJWTError as e:
        raise AipError(ErrorCode.UNAUTHENTICATED, "Invalid token: log in again.") from e
    if claims.get("typ") != "access":
        raise AipError(ErrorCode.UNAUTHENTICATED, "Not an access token: log in again.")
    return AccessClaims(user_id=int(claims["sub"]), session_id=int(claims["sid"]))
