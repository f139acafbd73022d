from __future__ import annotations

import pytest

from app.core.errors import AipError, ErrorCode
from app.core.security import create_access_token, decode_access_token, hash_password, verify_password


def test_passwords_are_hashed_with_argon2() -> None:
    hashed = hash_password("s3cret-pass")
    assert hashed.startswith("$argon2")
    assert "s3cret-pass" not in hashed
    assert verify_password("s3cret-pass", hashed)
    assert not verify_password("wrong", hashed)
    assert not verify_password("s3cret-pass", "not-a-hash")


def test_tokens_carry_the_subject_and_expire() -> None:
    token = create_access_token(subject="7", secret_key="k" * 32, minutes=5)
    assert decode_access_token(token, secret_key="k" * 32) == "7"
    with pytest.raises(AipError) as err:
        decode_access_token(token, secret_key="other" * 8)
    assert err.value.code is ErrorCode.UNAUTHENTICATED
    expired = create_access_token(subject="7", secret_key="k" * 32, minutes=-1)
    with pytest.raises(AipError, match="expired"):
        decode_access_token(expired, secret_key="k" * 32)
