"""Serve application of one deployed model version: loads its artifact once per replica, predicts raw rows.

When the model was trained on a version made by a preprocessing pipeline, the replica also loads that pipeline's
fitted JSON state and transforms raw rows exactly as the training data was transformed, before the model sees them.
An image model (signature task `image_classification`) takes rows `{"image": "<base64 PNG/JPEG>"}` instead, decoded
and resized as its training images were.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from ray import serve
from ray.serve import Application

from app.contracts.image_cnn import IMAGE_TASK, decode_rows
from app.core.config import get_settings
from app.db.models import ModelVersion
from app.db.session import session_scope
from app.services.data.pipeline_transform import transform
from app.services.data.pipelines import load_state
from app.storage import open_store
from train_jobs.artifacts import load_artifact
from train_jobs.templates import image_cnn
from train_jobs.templates.tabular_mlp import predict


# Replicas reserve no CPU: on a small machine a deployed model must not keep training jobs from starting.
@serve.deployment(name="ModelServer", ray_actor_options={"num_cpus": 0})
class ModelServer:
    def __init__(self, model_version_id: int, artifact_key: str) -> None:
        settings = get_settings()
        store = open_store(settings)
        self.model_version_id = model_version_id
        with session_scope(settings.database_url) as session:
            version = session.get(ModelVersion, model_version_id)
            signature = dict(version.signature) if version is not None else {}
        self.images = signature.get("task") == IMAGE_TASK
        self.model, self.spec = (image_cnn.load_artifact if self.images else load_artifact)(store, artifact_key)
        state_key = signature.get("pipeline_state_key")
        self.pipeline = load_state(store, state_key) if state_key else None

    def predict(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        if self.images:
            images = decode_rows(rows, self.spec.size, self.spec.channels)
            return image_cnn.predict(self.model, self.spec, images)
        frame = pd.DataFrame.from_records(rows)
        if self.pipeline is not None:
            frame = transform(self.pipeline, frame, serving=True)
        return predict(self.model, self.spec, frame)


def build_app(args: dict[str, Any]) -> Application:
    return ModelServer.bind(int(args["model_version_id"]), str(args["artifact_key"]))
