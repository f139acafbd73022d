"""Custom-code jobs: uploads checked (parses, defines the entry function), and a 2-worker job running the user's
`train_loop_per_worker` under the platform's TorchTrainer, reporting metrics and registering a version."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from app.client import ApiError, Client
from tests.utils.factories import TARGET, breast_cancer_split, upload_frame

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
