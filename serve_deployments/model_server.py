"""Serve application of one deployed model version: loads its artifact once per replica, predicts raw rows.

When the model was trained on a version made by a preprocessing pipeline, the replica also loads that pipeline's
fitted JSON state and transforms raw rows exactly as the training data was transformed, before the model sees them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from ray import serve
from ray.serve import Application

from app.core.config import get_settings
from app.db.models import ModelVersion
from app.db.session import session_scope
from app.services.pipeline_transform import transform
from app.services.pipelines import load_state
from app.storage import open_store
from train_jobs.artifacts import load_artifact
from train_jobs.templates.tabular_mlp import predict


# Replicas reserve no CPU: on a small machine a deployed model must not keep training jobs from starting.
@serve.deployment(name="ModelServer", ray_actor_options={"num_cpus": 0})
class ModelServer:
    def __init__(self, model_version_id: int, artifact_key: str) -> None:
        settings = get_settings()
        store = open_store(settings)
        self.model_version_id = model_version_id
        self.model, self.spec = load_artifact(store, artifact_key)
        with session_scope(settings.database_url) as session:
            version = session.get(ModelVersion, model_version_id)
            state_key = version.signature.get("pipeline_state_key") if version is not None else None
        self.pipeline = load_state(store, state_key) if state_key else None

    def predict(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        frame = pd.DataFrame.from_records(rows)
        if self.pipeline is not None:
            frame = transform(self.pipeline, frame, serving=True)
        return predict(self.model, self.spec, frame)


def build_app(args: dict[str, Any]) -> Application:
    return ModelServer.bind(int(args["model_version_id"]), str(args["artifact_key"]))
