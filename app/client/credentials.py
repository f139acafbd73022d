"""The CLI's saved logins: one refresh token per platform URL in a private file of the user's config dir."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def path() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "aiplatform" / "credentials.json"


def _read() -> dict[str, Any]:
    try:
        return json.loads(path().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _write(data: dict[str, Any]) -> None:
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, target)


def load(url: str) -> dict[str, str] | None:
    return _read().get(url)


def save(url: str, *, username: str, refresh_token: str) -> None:
    data = _read()
    data[url] = {"username": username, "refresh_token": refresh_token}
    _write(data)


def forget(url: str) -> None:
    data = _read()
    if data.pop(url, None) is not None:
        _write(data)
