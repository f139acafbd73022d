"""The CLI's login and administration commands against the running platform."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli.main import app
from app.client import Client
from app.core.config import Settings
from app.db.models import JobStatus, TrainingJob
from app.db.session import session_scope
from app.services.training import job_metrics
from tests.conftest import ADMIN_PASSWORD
from tests.utils.factories import TARGET, breast_cancer_split, upload_frame
from tests.utils.people import PASSWORD


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, admin: Client):  # noqa: ANN201
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("AIP_TOKEN", raising=False)
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None) -> str:
        result = runner.invoke(app, [*args, "--url", admin.base_url], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    return run


def test_login_saves_a_private_refresh_token_and_logout_forgets_it(cli, tmp_path: Path) -> None:  # noqa: ANN001
    assert "Logged in" in cli("login", "-u", "admin", "-p", ADMIN_PASSWORD)
    saved = tmp_path / "aiplatform" / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert ADMIN_PASSWORD not in saved.read_text()

    username = f"cli-{uuid.uuid4().hex[:6]}"
    assert "Created user" in cli("user", "create", username, "--role", "viewer", "--new-password", PASSWORD)
    assert username in cli("user", "list")
    assert "builtin" in cli("role", "list").replace("built-in", "builtin")

    assert "Logged out" in cli("logout")
    assert json.loads(saved.read_text()) == {}


def test_api_token_from_the_cli_works_for_scripts(cli) -> None:  # noqa: ANN001
    cli("login", "-u", "admin", "-p", ADMIN_PASSWORD)
    output = cli("token", "create", "script", "--scope", "training:job:list", "--days", "1")
    token = next(word for word in output.split() if word.startswith("aip_"))
    cli("logout")
    cli("job", "list", env={"AIP_TOKEN": token})  # no login needed: the token speaks for its user


def test_tune_create_sends_only_the_chosen_scheduler_options(cli, tmp_path: Path, admin: Client) -> None:  # noqa: ANN001
    cli("login", "-u", "admin", "-p", ADMIN_PASSWORD)
    train, _ = breast_cancer_split()
    version = upload_frame(admin, train, tmp_path, f"cli-tune-{uuid.uuid4().hex[:6]}")
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-1}}))
    common = ["tune", "create", "--target", TARGET, "--space", str(space), "--dataset-version-id", str(version["id"])]
    common += ["--scheduler", "pbt", "--epochs", "4", "--url", admin.base_url]

    mixed = CliRunner().invoke(app, [*common, "--grace-period", "2"])
    assert mixed.exit_code != 0
    assert "grace_period" in mixed.output  # the server names the ASHA option that PBT does not take

    too_long = CliRunner().invoke(app, [*common, "--perturbation-interval", "9"])
    assert too_long.exit_code != 0
    assert "perturbation_interval" in too_long.output and "grace_period" not in too_long.output


def test_job_steps_prints_the_logged_training_steps(
    cli,  # noqa: ANN001
    admin: Client,
    platform_settings: Settings,
    tmp_path: Path,
) -> None:
    cli("login", "-u", "admin", "-p", ADMIN_PASSWORD)
    frame = pd.DataFrame({"x": range(8), "y": [0, 1] * 4})
    version = upload_frame(admin, frame, tmp_path, f"cli-{uuid.uuid4().hex[:6]}")
    with session_scope(platform_settings.database_url) as s:
        job = TrainingJob(name="cli-steps", owner_id=admin.account()["id"], dataset_version_id=version["id"],
                          template="tabular_mlp", config={"epochs": 2}, status=JobStatus.SUCCEEDED)  # fmt: skip
        s.add(job)
        s.flush()
        rows = [
            {"step": 5 * i, "epoch": 1 + i // 11, "loss": 1 / i, "lr": 0.001, "samples_per_s": 900.0}
            for i in range(1, 21)
        ]
        job_metrics.record_training_steps(s, job_id=job.id, steps=rows)
        job_id = job.id
    output = cli("job", "steps", str(job_id), "--max-points", "3")
    assert output.splitlines()[0] == "20 steps logged"
    assert [line.split()[1] for line in output.splitlines()[1:]] == ["5", "55", "100"]
    assert "loss 1 " in output and "samples_per_s 900" in output
