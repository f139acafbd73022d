"""Serve application of one deployed model version: loads its artifact once per replica, predicts raw rows."""

from __future__ import annotations

from typing import Any

import pandas as pd
from ray import serve
from ray.serve import Application

from app.core.config import get_settings
from app.storage import open_store
from train_jobs.artifacts import load_artifact
from train_jobs.templates.tabular_mlp import predict


# Replicas reserve no CPU: on a small machine a deployed model must not keep training jobs from starting.
@serve.deployment(name="ModelServer", ray_actor_options={"num_cpus": 0})
class ModelServer:
    def __init__(self, model_version_id: int, artifact_key: str) -> None:
        self.model_version_id = model_version_id
        self.model, self.spec = load_artifact(open_store(get_settings()), artifact_key)

    def predict(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return predict(self.model, self.spec, pd.DataFrame.from_records(rows))


def build_app(args: dict[str, Any]) -> Application:
    return ModelServer.bind(int(args["model_version_id"]), str(args["artifact_key"]))
