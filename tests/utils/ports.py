"""Ports of test clusters: far from the platform's defaults (6390+, 8000, 8265), so a developer's running
platform and the suite never collide; AIP_TEST_PORT_OFFSET separates suites that run side by side."""

from __future__ import annotations

import os

PORT_OFFSET = int(os.environ.get("AIP_TEST_PORT_OFFSET", "0"))


def cluster_ports(base: int = 20000) -> dict[str, int]:
    """GCS port (its workers take the next 400), dashboard and HTTP ports of one test cluster."""
    base += PORT_OFFSET
    return {"ray_port": base, "ray_dashboard_port": base + 400, "http_port": base + 500}
