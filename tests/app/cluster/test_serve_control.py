from __future__ import annotations

from pathlib import Path

from ray.serve.schema import ServeDeploySchema

from app.cluster.serve_control import CONTROL_PLANE_APP, ModelApp, build_config
from app.core.config import Settings


def test_config_holds_the_control_plane_and_each_model_app(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, http_port=8123)
    apps = [ModelApp(name="model-deployment-2", model_version_id=5, artifact_key="models/job-1", num_replicas=2)]
    config = build_config(settings, apps)
    schema = ServeDeploySchema.model_validate(config)  # the config Serve's REST API accepts
    assert schema.http_options.port == 8123
    control, model = config["applications"]
    assert control["name"] == CONTROL_PLANE_APP and control["route_prefix"] == "/"
    assert model["route_prefix"] is None  # only reachable through the authorizing control plane
    assert model["args"] == {"model_version_id": 5, "artifact_key": "models/job-1"}
    assert model["deployments"] == [{"name": "ModelServer", "num_replicas": 2}]
    assert control["runtime_env"]["env_vars"]["AIP_DATABASE_URL"] == settings.database_url


def test_config_is_deterministic(tmp_path: Path) -> None:
    # Serve restarts an application whose config changed; an unchanged control plane must stay untouched.
    settings = Settings(data_dir=tmp_path)
    a = ModelApp(name="model-deployment-1", model_version_id=1, artifact_key="k1", num_replicas=1)
    b = ModelApp(name="model-deployment-2", model_version_id=2, artifact_key="k2", num_replicas=1)
    assert build_config(settings, [a, b]) == build_config(settings, [b, a])
