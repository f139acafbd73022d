"""`aiplatform login | logout | user | role | token` against the running platform."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

from tests.conftest import ADMIN_PASSWORD
from tests.utils.people import PASSWORD


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
