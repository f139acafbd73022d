"""Session-wide fixtures: one real platform (Ray head + Serve control plane) shared by every test that needs it.

The test platform uses its own ports, data dir and Ray temp dir, so it never touches a platform a developer runs
on the default ports; it is stopped by PID at the end of the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import ray

from app import launcher as platform
from app.client import Client
from app.core.config import Settings
from tests.utils.ports import cluster_ports

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

pytest_plugins = ["tests.utils.data_env"]  # data-layer fixtures: data_env, fast_env

ADMIN_PASSWORD = "test-admin-password-1"


@pytest.fixture(scope="session")
def platform_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("platform"),
        **cluster_ports(),
        ray_num_cpus=4,  # logical CPUs: lets a deployment and a training job share a 2-core machine
        admin_password=ADMIN_PASSWORD,
        reconcile_interval_s=0.5,
    )


@pytest.fixture(scope="session")
def running_platform(platform_settings: Settings) -> Iterator[platform.RunningPlatform]:
    yield platform.start(platform_settings).platform
    platform.stop(platform_settings)


@pytest.fixture(scope="session")
def admin(running_platform: platform.RunningPlatform) -> Client:
    return Client(running_platform.api_url).login("admin", ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def ray_driver(running_platform: platform.RunningPlatform, platform_settings: Settings) -> Iterator[None]:
    """The test process as a Ray driver on the shared test cluster, for one module."""
    ray.init(address=platform_settings.gcs_address, log_to_driver=False)
    yield
    ray.shutdown()
