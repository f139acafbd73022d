"""The pool of warm Train workers as the control plane knows it: its name and namespace, and the module that
implements it (`train_jobs.warm_pool`), which only Ray workers import."""

from __future__ import annotations

import hashlib
import json

NAMESPACE = "aiplatform"
MODULE = "train_jobs.warm_pool"  # named, not imported: it loads Ray Train's internals


def pool_name(env_vars: dict[str, str]) -> str:
    """One pool per platform configuration: its workers run with the platform's settings in their environment."""
    digest = hashlib.sha256(json.dumps(env_vars, sort_keys=True).encode()).hexdigest()
    return f"aip-warm-workers-{digest[:12]}"
