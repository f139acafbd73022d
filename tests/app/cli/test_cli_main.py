"""The assembled `aiplatform` command line, without a platform: every group and command is there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from app.cli.main import app

GROUPS = {
    "job": ["create", "list", "show", "steps", "logs", "start", "stop", "retry", "delete"],
    "tune": ["create", "list", "show", "stop", "logs"],
    "user": ["list", "create", "disable", "enable", "reset-password"],
    "role": ["list", "create"],
    "token": ["create", "list", "revoke"],
    "dataset": [
        "upload",
        "list",
        "profile",
        "delete",
        "versions",
        "features",
        "quality",
        "pipeline",
        "runs",
        "reports",
    ],
}


def _help(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_group_and_command_is_assembled() -> None:
    top = _help()
    for command in ["login", "logout", "up", "stop", "status", "demo", *GROUPS]:
        assert f" {command} " in top, command
    for group, commands in GROUPS.items():
        listed = _help(group)
        for command in commands:
            assert f" {command} " in listed, f"{group} {command}"


def test_runs_as_a_module() -> None:
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "dataset", "--help"], env=env, capture_output=True, text=True, check=True
    )
    assert "quality" in result.stdout and "upload" in result.stdout
