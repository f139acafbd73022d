"""`aiplatform tune ...` against the running platform."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from typer.testing import CliRunner

from app.cli.main import app
from app.client import Client
from tests.conftest import ADMIN_PASSWORD
from tests.utils.factories import TARGET, breast_cancer_split, upload_frame


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
