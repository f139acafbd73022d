"""`aiplatform dataset quality | pipeline | runs | reports | features | versions` against the running platform,
with real Ray jobs; the pipeline works on the columns of the dataset's feature configuration."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from app.cli.main import app
from app.client import Client
from app.core.config import Settings
from tests.app.api.test_data_listings_api import stored_profile
from tests.conftest import ADMIN_PASSWORD
from tests.utils.wait import wait_for

pytestmark = pytest.mark.ray


@pytest.fixture
def dataset_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, admin: Client):  # noqa: ANN201
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("AIP_TOKEN", raising=False)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, ["dataset", *args, "--url", admin.base_url], env={"COLUMNS": "200"})

    assert runner.invoke(app, ["login", "-u", "admin", "-p", ADMIN_PASSWORD, "--url", admin.base_url]).exit_code == 0
    return run


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def test_quality_and_pipeline_from_the_cli(
    dataset_cli,  # noqa: ANN001
    admin: Client,
    platform_settings: Settings,
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "id": range(40),
            "a": rng.normal(10, 2, 40),
            "b": rng.normal(-3, 1, 40),
            "colour": rng.choice(["red", "blue"], 40),
            "label": [0, 1] * 20,
        }
    )
    frame.loc[[3, 17], "a"] = np.nan
    frame.loc[30, "id"] = 4  # a repeated key
    path = tmp_path / "cells.csv"
    frame.to_csv(path, index=False)
    dataset = admin.create_dataset(f"cli-data-{uuid.uuid4().hex[:6]}")
    version = admin.upload(dataset["id"], path)

    out = ok(
        dataset_cli("features", str(dataset["id"]), "--target", "label", "--numeric", "a", "--categorical", "colour")
    )
    assert "numeric ['a']" in out
    assert str(version["id"]) in ok(dataset_cli("versions", str(dataset["id"])))

    out = ok(dataset_cli("quality", str(version["id"]), "--key-column", "id", "--max-examples", "2", "--wait"))
    report = admin.list_quality_reports(version["id"])[0]
    assert report["status"] == "SUCCEEDED", report["message"]
    assert f"Score {report['score']:.3f}" in out
    assert "missing cells" in out and "rows sharing a id" in out
    assert report["result"]["completeness"]["missing_cells"] == 2
    assert f"{report['id']}" in ok(dataset_cli("reports", str(version["id"]), "--status", "succeeded"))

    steps = tmp_path / "steps.json"
    steps.write_text(json.dumps([{"op": "impute", "strategy": "mean"}, {"op": "scale", "method": "standard"}]))
    out = ok(dataset_cli("pipeline", str(version["id"]), "--steps", str(steps), "--wait"))
    run = admin.list_pipeline_runs(version["id"])[0]
    assert run["status"] == "SUCCEEDED", run["message"]
    assert f"New version id {run['output_version_id']}" in out and "scale" in out
    state = admin.pipeline_state(run["output_version_id"])
    # Steps without columns took the feature configuration: only 'a' is numeric there, 'b' stays raw.
    assert list(state["steps"][0]["values"]) == ["a"] and list(state["steps"][1]["params"]) == ["a"]
    assert state["steps"][0]["values"]["a"] == pytest.approx(frame["a"].mean())
    # The pipeline's output version is profiled in the background too, without anyone asking for it.
    made = run["output_version_id"]
    profile = wait_for(lambda: stored_profile(platform_settings, made), timeout_s=60, what="the output's profile")
    by_name = {c["name"]: c for c in profile["column_profiles"]}
    assert profile["rows"] == 40 and by_name["a"]["missing"] == 0  # imputed
    assert by_name["a"]["mean"] == pytest.approx(0, abs=1e-9)  # and standardized
    runs = ok(dataset_cli("runs", str(version["id"])))
    assert str(run["id"]) in runs and "SUCCEEDED" in runs
    assert str(run["output_version_id"]) in ok(dataset_cli("versions", str(dataset["id"])))


def test_bad_cli_input_says_what_to_change(dataset_cli, admin: Client, tmp_path: Path) -> None:  # noqa: ANN001
    path = tmp_path / "small.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    dataset = admin.create_dataset(f"cli-bad-{uuid.uuid4().hex[:6]}")
    version = admin.upload(dataset["id"], path)
    reports_before = admin.list_quality_reports(version["id"])

    result = dataset_cli("quality", str(version["id"]), "--column-type", "a")
    assert result.exit_code != 0 and "COLUMN=TYPE" in result.output
    result = dataset_cli("quality", str(version["id"]), "--key-column", "nope")
    assert result.exit_code == 1 and "nope" in result.output
    assert admin.list_quality_reports(version["id"]) == reports_before  # nothing started

    not_json = tmp_path / "steps.json"
    not_json.write_text("impute then scale")
    result = dataset_cli("pipeline", str(version["id"]), "--steps", str(not_json))
    assert result.exit_code != 0 and "not JSON" in result.output
    unknown_op = tmp_path / "unknown.json"
    unknown_op.write_text(json.dumps([{"op": "shuffle"}]))
    result = dataset_cli("pipeline", str(version["id"]), "--steps", str(unknown_op))
    assert result.exit_code == 1 and "shuffle" in result.output
    assert admin.list_pipeline_runs(version["id"]) == []

    result = dataset_cli("features", str(dataset["id"]), "--numeric", "a,zzz")
    assert result.exit_code == 1 and "zzz" in result.output
    result = dataset_cli("runs", str(version["id"]), "--status", "done")
    assert result.exit_code == 1 and "status" in result.output.lower()
    result = dataset_cli("versions", "999999")
    assert result.exit_code == 1 and "999999" in result.output
