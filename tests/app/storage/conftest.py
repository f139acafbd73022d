from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from app.storage.base import ObjectStore
from app.storage.local import LocalStore
from app.storage.s3 import S3Store
from tests.utils.seaweedfs import SeaweedFS

BUCKET = "aip-test"  # one bucket: each new bucket makes SeaweedFS allocate volumes for a new collection


def make_s3_store(server: SeaweedFS, prefix: str) -> S3Store:
    return S3Store(
        bucket=BUCKET,
        prefix=prefix,
        endpoint=server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
        secure=False,
    )


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """An empty store of each kind: a LocalStore in a tmp dir, an S3Store under a fresh prefix on SeaweedFS."""
    if request.param == "local":
        return LocalStore(tmp_path / "objects")
    return make_s3_store(request.getfixturevalue("seaweedfs"), prefix=f"tests/{uuid.uuid4().hex}")
