"""What the Ray cluster offers: each alive node's resources and what is free right now."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.config import Settings
from app.core.errors import AipError, ErrorCode

# Ray's bookkeeping resources that are not capacity (node:IP, accelerator_type:..., object_store_memory).
_CAPACITY_KEYS = ("CPU", "GPU", "memory")


@dataclass(frozen=True)
class Capacity:
    nodes: list[dict[str, float]]  # total resources of each alive node
    available: dict[str, float]  # free now, summed over the cluster

    @property
    def total(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for node in self.nodes:
            for key, value in node.items():
                total[key] = total.get(key, 0.0) + value
        return total


def read(settings: Settings) -> Capacity:
    """Reads the cluster's resources (connecting this process to the platform's cluster if needed)."""
    import ray

    try:
        if not ray.is_initialized():
            ray.init(address=settings.gcs_address, logging_level="ERROR", log_to_driver=False)
        nodes = [
            {k: float(v) for k, v in node["Resources"].items() if k in _CAPACITY_KEYS}
            for node in ray.nodes()
            if node.get("Alive")
        ]
        available = {k: float(v) for k, v in ray.available_resources().items() if k in _CAPACITY_KEYS}
    except Exception as e:  # connection refused, GCS gone: the caller decides whether to wait
        raise AipError(ErrorCode.UNAVAILABLE, f"Cannot read the Ray cluster's resources: {e}") from e
    return Capacity(nodes=nodes, available=available)
