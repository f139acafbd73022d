from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.utils.seaweedfs import SeaweedFS, seaweedfs_server


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """One real SeaweedFS S3 server for the whole test session (storage and data-layer tests share it)."""
    with seaweedfs_server() as server:
        yield server
