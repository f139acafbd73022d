"""The files in cluster_configs/ against what reads them and against the platform they deploy.

Readers: Ray's cluster-launcher schema (`ray up`), KubeRay's CRDs checked as strictly as `kubectl apply` with strict
field validation, and Ray Serve's config schema. The platform: its settings' ports and the control-plane
application that `app.cluster.serve_control.build_config` deploys. The KubeRay CRDs are read from the shared folder
beside the checkout (../shared/kuberay/crds); without it those tests skip.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray.autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.serve.schema import ServeDeploySchema

from app.cluster.serve_control import build_config
from app.core.config import ENV_PREFIX, Settings

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "cluster_configs"
CRD_DIR = REPO.parent / "shared" / "kuberay" / "crds"
CRD_FILES = {
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "RayService": "ray.io_rayservices.yaml",
}
KUBERAY_MANIFESTS = ["kuberay/rayservice.yaml", "kuberay/raycluster.yaml", "kuberay/rayjob.yaml"]
SETTINGS_SECRET = "aiplatform-settings"
# The C loader reads the multi-megabyte CRDs in seconds instead of tens of seconds.
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path) -> Any:
    with open(path) as f:
        return yaml.load(f, Loader=Loader)


def strict(schema: Any) -> Any:
    """Rejects unknown fields like `kubectl apply` with strict validation: every object schema that lists its
    `properties` and neither allows extra ones nor preserves unknown fields gets `additionalProperties: false`.
    Changes the schema in place and returns it."""
    if not isinstance(schema, dict):
        return schema
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False
    for keyword in ("properties", "patternProperties"):
        for sub in schema.get(keyword, {}).values():
            strict(sub)
    for keyword in ("items", "additionalProperties", "not"):
        strict(schema.get(keyword))
    for keyword in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(keyword, []):
            strict(sub)
    return schema


def errors_of(validator: jsonschema.protocols.Validator, document: Any) -> list[str]:
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}" for e in errors]


def manifest(name: str) -> dict[str, Any]:
    documents = [d for d in yaml.safe_load_all((CONFIGS / name).read_text()) if d is not None]
    assert len(documents) == 1, f"{name} should hold one object"
    return documents[0]


def pod_templates(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Group name ('head' for the head) -> pod template, for a RayCluster, RayService or RayJob."""
    spec = resource["spec"]
    cluster = spec.get("rayClusterConfig") or spec.get("rayClusterSpec") or spec
    groups = {"head": cluster["headGroupSpec"]["template"]}
    groups.update({g["groupName"]: g["template"] for g in cluster.get("workerGroupSpecs", [])})
    return groups


@pytest.fixture(scope="module")
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> a strict validator of that CRD version's openAPIV3Schema; each CRD is read once."""
    if not CRD_DIR.is_dir():
        pytest.skip(
            f"KubeRay's CRDs are not at {CRD_DIR}: they live in the shared folder beside the checkout "
            "(../shared/kuberay/crds) and are not part of the project."
        )
    validators = {}
    for kind, file_name in CRD_FILES.items():
        crd = load_yaml(CRD_DIR / file_name)
        assert crd["spec"]["names"]["kind"] == kind, f"{file_name} does not define {kind}"
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            validators[f"{crd['spec']['group']}/{version['name']}", kind] = jsonschema.Draft7Validator(schema)
    return validators


@pytest.fixture
def default_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a deployment starts from: defaults only, whatever AIP_* this shell has."""
    for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    return Settings(data_dir=tmp_path)


# --- ray up ---------------------------------------------------------------------------------------------------------


def test_ray_up_config_matches_rays_schema() -> None:
    config = load_yaml(CONFIGS / "ray-up-onprem.yaml")
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    assert errors_of(jsonschema.Draft7Validator(schema), config) == []
    # As `ray up` reads it: the local provider's node type and defaults filled in, then Ray's own check.
    prepared = prepare_config(config)
    validate_config(prepared)
    (node_type,) = prepared["available_node_types"].values()
    assert node_type["min_workers"] == len(config["provider"]["worker_ips"])  # every listed box joins


def test_ray_up_start_commands_use_the_platforms_ports_and_auth_mode() -> None:
    config = load_yaml(CONFIGS / "ray-up-onprem.yaml")
    fields = Settings.model_fields
    gcs_port, dashboard_port = fields["ray_port"].default, fields["ray_dashboard_port"].default
    head, workers = config["head_start_ray_commands"], config["worker_start_ray_commands"]
    (head_start,) = [c for c in head if "ray start" in c]
    (worker_start,) = [c for c in workers if "ray start" in c]
    assert f"--port={gcs_port} " in head_start and f"--dashboard-port={dashboard_port}" in head_start
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head_start  # without it no worker is started
    assert f"--address=$RAY_HEAD_IP:{gcs_port} " in worker_start
    # The platform comes after Ray, attached to it: with AIP_RAY_ADDRESS it starts no head of its own.
    (platform_up,) = [c for c in head if "aiplatform up" in c]
    assert head.index(platform_up) > head.index(head_start)
    assert "AIP_RAY_ADDRESS=" in platform_up
    assert f"127.0.0.1:{dashboard_port}" in platform_up  # waits for the dashboard it deploys through
    for command in (head_start, worker_start, platform_up):
        assert "RAY_AUTH_MODE=disabled" in command, command


# --- KubeRay --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", KUBERAY_MANIFESTS)
def test_kuberay_manifest_matches_its_crd_strictly(name: str, crd_validators: dict) -> None:
    resource = manifest(name)
    validator = crd_validators.get((resource["apiVersion"], resource["kind"]))
    assert validator is not None, f"no CRD for {resource['apiVersion']} {resource['kind']} in {CRD_DIR}"
    assert errors_of(validator, resource) == []


@pytest.mark.parametrize(
    ("path", "field"),
    [
        pytest.param(["spec", "rayClusterConfig", "headGroupSpec"], "bogus", id="cluster-field"),
        # a typo inside the embedded pod spec is caught too, as kubectl would
        pytest.param(
            ["spec", "rayClusterConfig", "workerGroupSpecs", 1, "template", "spec", "containers", 0],
            "resource",
            id="pod-field",
        ),
    ],
)
def test_strict_validation_rejects_an_unknown_field(path: list[Any], field: str, crd_validators: dict) -> None:
    resource = copy.deepcopy(manifest("kuberay/rayservice.yaml"))
    target = resource
    for key in path:
        target = target[key]
    target[field] = 1
    errors = errors_of(crd_validators["ray.io/v1", "RayService"], resource)
    assert len(errors) == 1 and errors[0].startswith(".".join(map(str, path)) + ":"), errors
    assert f"'{field}' was unexpected" in errors[0]


@pytest.mark.parametrize("name", KUBERAY_MANIFESTS)
def test_every_pod_reads_the_settings_secret_with_ray_auth_decided(name: str) -> None:
    resource = manifest(name)
    spec = resource["spec"]
    cluster = spec.get("rayClusterConfig") or spec.get("rayClusterSpec") or spec
    assert cluster["authOptions"] == {"mode": "disabled"}
    for group, template in pod_templates(resource).items():
        for container in template["spec"]["containers"]:
            secrets = [e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e]
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            assert secrets == [SETTINGS_SECRET], f"{name} {group}/{container['name']}"
            assert env.get("RAY_AUTH_MODE") == "disabled", f"{name} {group}/{container['name']}"
            assert container["image"] == "aiplatform:0.1.0"


def test_job_cluster_has_the_services_worker_pools() -> None:
    service = manifest("kuberay/rayservice.yaml")["spec"]["rayClusterConfig"]
    cluster = manifest("kuberay/raycluster.yaml")["spec"]

    def pools_without_env(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # The service's workers also get the head's address for the control plane; the pools are the same.
        groups = copy.deepcopy(groups)
        for group in groups:
            for container in group["template"]["spec"]["containers"]:
                container.pop("env", None)
        return groups

    assert pools_without_env(cluster["workerGroupSpecs"]) == pools_without_env(service["workerGroupSpecs"])
    assert cluster["enableInTreeAutoscaling"] and service["enableInTreeAutoscaling"]
    pools = {g["groupName"]: g for g in service["workerGroupSpecs"]}
    assert set(pools) == {"cpu", "gpu"}
    for group in pools.values():
        assert group["minReplicas"] < group["maxReplicas"]  # room for the autoscaler
    (gpu_container,) = pools["gpu"]["template"]["spec"]["containers"]
    assert gpu_container["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_rayjob_runs_one_training_job_and_cleans_up() -> None:
    spec = manifest("kuberay/rayjob.yaml")["spec"]
    assert spec["entrypoint"] == "python -m train_jobs.train_tabular 1"
    assert spec["shutdownAfterJobFinishes"] is True


# --- Serve ----------------------------------------------------------------------------------------------------------


def serve_config(source: str) -> dict[str, Any]:
    if source == "kuberay/rayservice.yaml":
        return yaml.safe_load(manifest(source)["spec"]["serveConfigV2"])
    return load_yaml(CONFIGS / source)


@pytest.mark.parametrize("source", ["serve-config.yaml", "kuberay/rayservice.yaml"])
def test_serve_config_deploys_the_platforms_control_plane(source: str, default_settings: Settings) -> None:
    schema = ServeDeploySchema.model_validate(serve_config(source))  # what Serve's REST API accepts
    expected = build_config(default_settings, [])
    assert [(a.name, a.route_prefix, a.import_path) for a in schema.applications] == [
        (a["name"], a["route_prefix"], a["import_path"]) for a in expected["applications"]
    ]
    assert schema.proxy_location.value == expected["proxy_location"]
    assert schema.http_options.port == expected["http_options"]["port"]
    # Settings come from the cluster's environment, never written into a config file.
    assert all(not a.runtime_env for a in schema.applications)
