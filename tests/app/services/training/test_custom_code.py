"""Custom-code jobs: uploads checked (parses, defines the entry function), and a 2-worker job running the user's
`train_loop_per_worker` under the platform's TorchTrainer, reporting metrics and registering a version."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from pathlib import Path

import pytest

from app.client import ApiError, Client
from app.core.config import Settings
from tests.utils.factories import TARGET, breast_cancer_split, upload_frame
from tests.utils.people import PASSWORD

pytestmark = pytest.mark.ray

EXAMPLE = Path(__file__).parents[4] / "train_jobs" / "examples" / "logistic_regression.py"


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("train.py", b"def train_loop_per_worker(config:\n", "does not parse"),
        ("train.py", b"def main(config):\n    pass\n", "train_loop_per_worker"),
        ("train.txt", b"x", "Upload a .py file or a .zip"),
        ("code.zip", zipped({"other.py": "def train_loop_per_worker(c): pass\n"}), "needs a train.py"),
        ("code.zip", b"not a zip", "not a readable zip"),
        ("train.py", b"", "empty"),
    ],
)
def test_bad_code_is_refused(admin: Client, name: str, content: bytes, match: str) -> None:
    response = admin._http.post("/training/code", files={"file": (name, content)})
    assert response.status_code == 422, response.text
    assert match.lower() in response.json()["message"].lower()


def test_custom_code_job_runs_the_users_loop(admin: Client, tmp_path: Path) -> None:
    train, _ = breast_cancer_split()
    version = upload_frame(admin, train, tmp_path, "custom-code")
    code = admin.upload_code(EXAMPLE)
    assert code["code_hash"] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    base = {"dataset_version_id": version["id"], "target_column": TARGET, "template": "custom"}
    with pytest.raises(ApiError, match="code_hash") as err:
        admin.create_job(**base)
    assert err.value.status == 422
    with pytest.raises(ApiError) as err:
        admin.create_job(**base, code_hash="0" * 64)
    assert err.value.status == 404

    job = admin.create_job(**base, code_hash=code["code_hash"], epochs=5, num_workers=2, params={"lr": 0.5})
    done = admin.wait_job(job["id"], timeout_s=400)
    assert done["status"] == "SUCCEEDED", done["message"] + admin.job_logs(job["id"])[-3000:]
    assert [m["step"] for m in done["metrics"]] == [1, 2, 3, 4, 5]
    assert done["metrics"][-1]["val_accuracy"] > 0.8
    model_version = admin.get_model_version(done["model_version_id"])
    assert model_version["template"] == "custom"
    assert model_version["lineage"]["code_hash"] == code["code_hash"]
    assert model_version["lineage"]["config"]["params"] == {"lr": 0.5}


# User code that looks for the platform's secrets where a careless or curious loop would: its environment, its
# working directory, the platform's settings object. It prints what it found for the test to read in the logs.
SNOOPING = """
import json, os
from pathlib import Path

from train_jobs import runtime


def train_loop_per_worker(config):
    from app.core.config import get_settings

    seen = {
        "environ": dict(os.environ),
        "cwd": os.getcwd(),
        "cwd_files": sorted(p.name for p in Path.cwd().rglob("*")),
        "settings_secret": get_settings().secret_key,
    }
    print("SNOOP " + json.dumps(seen), flush=True)
    runtime.report({"epoch": 1, "val_accuracy": 1.0}, {"epoch": 1})
"""


def test_custom_code_cannot_read_the_platforms_secrets(
    admin: Client, platform_settings: Settings, tmp_path: Path
) -> None:
    train, _ = breast_cancer_split()
    version = upload_frame(admin, train.head(50), tmp_path, "custom-snoop")
    code_file = tmp_path / "snoop.py"
    code_file.write_text(SNOOPING)
    code = admin.upload_code(code_file)
    job = admin.create_job(
        dataset_version_id=version["id"],
        target_column=TARGET,
        template="custom",
        code_hash=code["code_hash"],
        epochs=1,
        num_workers=1,
    )
    done = admin.wait_job(job["id"], timeout_s=400)
    logs = admin.job_logs(job["id"])
    assert done["status"] == "SUCCEEDED", done["message"] + logs[-3000:]
    line = next(x for x in logs.splitlines() if "SNOOP " in x)
    seen = json.loads(line.split("SNOOP ", 1)[1])
    secrets = [platform_settings.secret_key, platform_settings.encryption_key]
    assert not any(s in line for s in secrets), "a platform key reached the user's code"
    assert not [name for name in seen["environ"] if name.startswith(("AIP_", "AWS_"))], seen["environ"].keys()
    data_dir = str(platform_settings.data_dir)
    assert not seen["cwd"].startswith(data_dir), seen["cwd"]
    assert not {"secret_key", "encryption_key", "aiplatform.db"} & set(seen["cwd_files"])
    # The loop ran with the worker's Ray environment intact, and the job recorded its report.
    assert done["metrics"][-1]["val_accuracy"] == 1.0


def test_custom_code_needs_its_own_permission(admin: Client, tmp_path: Path) -> None:
    username = f"dev-{uuid.uuid4().hex[:6]}"
    admin.create_user(username, PASSWORD, ["developer"])
    developer = Client(admin.base_url).login(username, PASSWORD)
    with pytest.raises(ApiError, match="training:code:run") as err:
        developer.upload_code(EXAMPLE)
    assert err.value.status == 403
    code = admin.upload_code(EXAMPLE)  # uploaded by someone allowed: running it still needs the permission
    version = upload_frame(developer, breast_cancer_split()[0].head(50), tmp_path, "custom-denied")
    with pytest.raises(ApiError, match="training:code:run") as err:
        developer.create_job(
            dataset_version_id=version["id"], target_column=TARGET, template="custom", code_hash=code["code_hash"]
        )
    assert err.value.status == 403
    # Templates stay open to developers.
    assert developer.create_job(
        dataset_version_id=version["id"], target_column=TARGET, template="tabular_mlp", start=False
    )
