from __future__ import annotations

import pytest

from app.core.errors import AipError, ErrorCode
from app.core.security import (
    AccessClaims,
    create_access_token,
    decode_access_token,
    hash_password,
    hash_token,
    verify_password,
)


def test_passwords_are_hashed_with_argon2() -> None:
    hashed = hash_password("s3cret-pass")
    assert hashed.startswith("$argon2")
    assert "s3cret-pass" not in hashed
    assert verify_password("s3cret-pass", hashed)
    assert not verify_password("wrong", hashed)
    assert not verify_password("s3cret-pass", "not-a-hash")


def test_tokens_carry_user_and_session_and_expire() -> None:
    token = create_access_token(user_id=7, session_id=3, secret_key="k" * 32, minutes=5)
    assert decode_access_token(token, secret_key="k" * 32) == AccessClaims(user_id=7, session_id=3)
    with pytest.raises(AipError) as err:
        decode_access_token(token, secret_key="other" * 8)
    assert err.value.code is ErrorCode.UNAUTHENTICATED
    expired = create_access_token(user_id=7, session_id=3, secret_key="k" * 32, minutes=-1)
    with pytest.raises(AipError, match="expired"):
        decode_access_token(expired, secret_key="k" * 32)


def test_opaque_tokens_are_stored_as_sha256() -> None:
    digest = hash_token("aip_abc_secret")
    assert len(digest) == 64 and "secret" not in digest
    assert hash_token("aip_abc_secret") == digest
