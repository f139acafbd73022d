"""The datasets page in a real headless Chromium: a version's profile and quality reports, a quality check run
from the page until its score shows — with names from the data rendered as text, never as HTML."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest

from app.client import Client
from tests.app.web.test_ui import browser  # noqa: F401  (the module's Chromium fixture)
from tests.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.ray

HOSTILE = "<img src=x onerror=alert(1)>"


def test_version_profile_and_a_quality_check_from_the_page(
    browser,  # noqa: ANN001, F811
    running_platform,  # noqa: ANN001
    admin: Client,
    tmp_path: Path,
) -> None:
    path = tmp_path / "ui.csv"
    pd.DataFrame({"size": [1.0, 2.0, None, 4.0, 5.0, 6.0], HOSTILE: ["a", "b", "a", "c", "a", None]}).to_csv(
        path, index=False
    )
    dataset = admin.create_dataset(f"ui-data-{uuid.uuid4().hex[:6]}")
    version = admin.upload(dataset["id"], path)

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(running_platform.api_url)
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Training jobs")

    page.goto(f"{running_platform.api_url}/#/datasets")
    page.click(f"a[href='#/datasets/{version['id']}']")
    page.wait_for_selector("#profile table")
    profile = page.inner_text("#profile")
    assert HOSTILE in profile and "size" in profile and "3.6" in profile  # mean of 1, 2, 4, 5, 6
    assert "No quality report yet." in page.inner_text("#quality-reports")

    page.click("#run-quality")
    page.wait_for_function("document.getElementById('quality-score').textContent.startsWith('Score ')", timeout=240_000)
    report = admin.list_quality_reports(version["id"])[0]
    assert page.inner_text("#quality-score").startswith(f"Score {report['score']:.3f}")
    assert "SUCCEEDED" in page.inner_text("#quality-reports")
    assert not dialogs  # the hostile column name never ran
    page.screenshot(path=str(tmp_path / "version.png"), full_page=True)
