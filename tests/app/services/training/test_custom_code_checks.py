"""Uploaded training code is checked and stored by content without a cluster."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from app.core.errors import AipError
from app.services.training import custom_code
from app.storage.local import LocalStore

GOOD = b"def train_loop_per_worker(config):\n    pass\n"


def test_code_is_stored_once_by_content(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    first = custom_code.store_code(store, file_name="dir/train.py", data=GOOD)
    again = custom_code.store_code(store, file_name="train.py", data=GOOD)
    assert first == again
    assert first.code_hash == hashlib.sha256(GOOD).hexdigest()
    assert custom_code.find(store, first.code_hash) == f"code/{first.code_hash}/train.py"


@pytest.mark.parametrize(
    ("code_hash", "match"),
    [("abc", "64-hex"), ("0" * 64, "does not exist")],
)
def test_unknown_code_is_named(tmp_path: Path, code_hash: str, match: str) -> None:
    with pytest.raises(AipError, match=match):
        custom_code.find(LocalStore(tmp_path), code_hash)


def test_nested_function_does_not_count() -> None:
    with pytest.raises(AipError, match="top-level"):
        custom_code.check("t.py", b"class A:\n    def train_loop_per_worker(self, config):\n        pass\n")
