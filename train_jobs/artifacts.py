"""Model artifacts in the platform's storage: weights as a torch state dict (loaded with weights_only, so no
pickled code runs) and the template's spec as JSON."""

from __future__ import annotations

import io
import json

import torch

from app.storage import ObjectStore
from train_jobs.templates.tabular_mlp import TabularSpec, build_model

WEIGHTS = "model.pt"
SPEC = "spec.json"


def save_artifact(store: ObjectStore, prefix: str, model: torch.nn.Module, spec: TabularSpec) -> None:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    store.put_bytes(f"{prefix}/{WEIGHTS}", buffer.getvalue())
    store.put_bytes(f"{prefix}/{SPEC}", json.dumps(spec.to_dict()).encode())


def load_artifact(store: ObjectStore, prefix: str) -> tuple[torch.nn.Module, TabularSpec]:
    spec = TabularSpec.from_dict(json.loads(store.get_bytes(f"{prefix}/{SPEC}")))
    model = build_model(spec)
    state = torch.load(io.BytesIO(store.get_bytes(f"{prefix}/{WEIGHTS}")), weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return model, spec
