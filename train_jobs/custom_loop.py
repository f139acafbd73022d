"""Runs a user's `train_loop_per_worker(config)` inside a platform Ray Train worker.

The user's config holds their `params`, the job's hyperparameters and resources (`job`), the dataset as a pandas
DataFrame (`dataset`) and `target_column`. The loop reports through `train_jobs.runtime.report(metrics, state)`
(metrics carry an `epoch`, and the job's metric) and resumes with `train_jobs.runtime.restore()`.
"""

from __future__ import annotations

import importlib.util
import io
import sys
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import ray

from train_jobs import runtime, sandbox

MODULE_NAME = "aip_user_train"


def load_module(file_name: str, code: bytes) -> ModuleType:
    """Imports the user's file (or train.py of their zip, with the zip's folder importable)."""
    folder = Path(tempfile.mkdtemp(prefix="aip-code-", dir=Path.cwd()))
    if file_name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(code)) as archive:
            archive.extractall(folder)
        sys.path.insert(0, str(folder))
        path = folder / "train.py"
    else:
        path = folder / file_name
        path.write_bytes(code)
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"Cannot import {file_name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    # Nothing of the platform's secrets, nor its data dir as working directory, from here on (train_jobs.sandbox).
    sandbox.enter(sandbox.Limits(**loop_config["limits"]))
    runtime.mark_running(loop_config.get("job_id"), through_driver=True)
    module = load_module(loop_config["file_name"], loop_config["code"])
    job = loop_config["config"]
    module.train_loop_per_worker(
        {
            **job.get("params", {}),
            "params": job.get("params", {}),
            "job": job,
            "dataset": ray.get(loop_config["frame"]),
            "target_column": job["target_column"],
        }
    )
    runtime.close_step_log()
