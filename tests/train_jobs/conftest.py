from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray

from app.core.config import Settings
from app.launcher import RunningPlatform


@pytest.fixture(scope="module")
def ray_driver(running_platform: RunningPlatform, platform_settings: Settings) -> Iterator[None]:
    """The test process as a Ray driver on the shared test cluster, for one module."""
    ray.init(address=platform_settings.gcs_address, log_to_driver=False)
    yield
    ray.shutdown()
