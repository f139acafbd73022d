"""The `cli` fixture: runs `aiplatform` commands in-process against the test platform, with a private config dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli.main import app
from app.client import Client


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, admin: Client) -> Callable[..., str]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("AIP_TOKEN", raising=False)
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None) -> str:
        result = runner.invoke(app, [*args, "--url", admin.base_url], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    return run
