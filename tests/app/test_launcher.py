"""Platform lifecycle: a second start finds the running platform; stop ends exactly the processes it started."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil

from app import launcher as platform
from app.cluster import local_ray
from app.core.config import Settings
from tests.utils.ports import cluster_ports


def test_second_start_finds_the_running_platform(running_platform, platform_settings: Settings) -> None:  # noqa: ANN001
    again = platform.start(platform_settings)
    assert not again.started
    assert again.platform == running_platform
    assert again.admin_password is None


def test_stop_by_pid_leaves_other_clusters_alone(running_platform, tmp_path: Path) -> None:  # noqa: ANN001
    other = Settings(data_dir=tmp_path, ray_num_cpus=1, **cluster_ports(base=21000))
    pid = local_ray.start_head(other, tmp_path / "head.log")
    local_ray.wait_until_ready(other, pid)
    tree = [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]
    assert len(tree) > 3  # gcs, raylet, dashboard...

    local_ray.stop_tree(pid)

    assert not [p for p in tree if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert httpx.get(f"{running_platform.api_url}/api/v1/health").status_code == 200


def test_stop_without_a_platform_is_a_no_op(tmp_path: Path) -> None:
    assert platform.stop(Settings(data_dir=tmp_path)) is False
    assert platform.find_running(Settings(data_dir=tmp_path)) is None
