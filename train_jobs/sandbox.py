"""What a user's training code runs inside, in the Train worker process that calls it (SECURITY.md).

Before the user's function runs, the worker drops the platform's secrets and credentials from its environment and
from the settings it cached, moves into a private working directory (not the platform's data dir or Ray's session
dir), and caps its threads, memory and CPU time from the job's request. The worker needs none of it afterwards:
custom-code workers write nothing to the database; their metrics, steps and checkpoints go to the job's driver
with each report.

This is not an OS boundary: the code still runs as the platform's OS user (see SECURITY.md for what that reaches).
"""

from __future__ import annotations

import math
import os
import re
import resource
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

# Names that hold platform settings, credentials or tokens. Ray's own variables (RAY_*) stay: the worker's Ray
# runtime reads some of them while it runs; a Ray auth token is dropped all the same.
_SECRET_NAME = re.compile(
    r"^(AIP_|AWS_|MINIO_|PG|MYSQL|MARIADB|DATABASE_|REDIS_)|SECRET|PASSW|TOKEN|CREDENTIAL|PRIVATE|_KEY(_|$)|API_?KEY",
    re.IGNORECASE,
)
_KEEP = frozenset({"RAY_AUTH_MODE"})
# Memory the worker itself holds (Python, torch, Ray's core worker) on top of what the job reserved.
WORKER_OVERHEAD_BYTES = 1 << 30


@dataclass(frozen=True)
class Limits:
    """The caps of one custom-code worker, from the job's request (0: none)."""

    threads: int
    memory_bytes: int
    cpu_seconds: int

    @classmethod
    def for_job(cls, *, cpus_per_worker: float, memory_per_worker_mb: int, max_hours: float) -> Limits:
        threads = max(1, math.ceil(cpus_per_worker))
        memory = memory_per_worker_mb * 2**20 + WORKER_OVERHEAD_BYTES if memory_per_worker_mb else 0
        return cls(threads=threads, memory_bytes=memory, cpu_seconds=int(max_hours * 3600 * threads))

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def secret_names(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    return sorted(name for name in environ if name not in _KEEP and _SECRET_NAME.search(name))


def scrub_environment() -> list[str]:
    """Removes the platform's settings and every credential-looking variable; returns the names removed."""
    removed = secret_names(os.environ)
    for name in removed:
        del os.environ[name]
    try:  # a warm worker may have read the platform's settings (and key files) already
        from app.core.config import get_settings

        get_settings.cache_clear()
    except ImportError:
        pass
    return removed


def private_workdir() -> Path:
    """A fresh directory only this OS user can enter, made the working directory."""
    folder = Path(tempfile.mkdtemp(prefix="aip-user-code-"))
    folder.chmod(0o700)
    os.chdir(folder)
    return folder


def apply_limits(limits: Limits) -> None:
    """Caps threads (torch, OpenMP, BLAS), the data segment and CPU time of this worker process. A worker over its
    CPU time is killed by the kernel (SIGXCPU); over its memory, allocations fail (MemoryError)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(limits.threads)
    import torch

    torch.set_num_threads(limits.threads)
    if limits.memory_bytes:
        _lower(resource.RLIMIT_DATA, limits.memory_bytes)
    if limits.cpu_seconds:
        used = resource.getrusage(resource.RUSAGE_SELF)
        _lower(resource.RLIMIT_CPU, math.ceil(used.ru_utime + used.ru_stime) + limits.cpu_seconds)


def _lower(kind: int, value: int) -> None:
    # A process may lower its limits, never raise them: keep a stricter one set by the node.
    soft, hard = resource.getrlimit(kind)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    if soft == resource.RLIM_INFINITY or value < soft:
        resource.setrlimit(kind, (value, hard))


def enter(limits: Limits) -> Path:
    """All of the above, in the order that leaves nothing behind: returns the working directory."""
    scrub_environment()
    apply_limits(limits)
    return private_workdir()
