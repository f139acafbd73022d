"""The web UI in a real headless Chromium against the running platform: log in, follow a job's live metrics
chart and logs, browse datasets — with user data rendered as text, never as HTML."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import delete

from app.client import Client
from app.contracts.status import JobStatus
from app.core.config import Settings
from app.db.models import JobMetric, TrainingJob, TuningRun, TuningTrial
from app.db.session import session_scope
from tests.conftest import ADMIN_PASSWORD
from tests.utils.factories import TARGET, breast_cancer_split, upload_frame

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without these, Chromium's background connections are refused on a closed network, many at a time.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing; .ci/run installs Debian's chromium package.")
        pytest.skip("UI tests need Debian's chromium (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def logged_in(browser, url: str):  # noqa: ANN001, ANN201 - Playwright's types
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(url)
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=New training job")  # the jobs page, the first after logging in
    return page


@pytest.fixture
def finished_job(admin: Client, platform_settings: Settings, tmp_path: Path) -> Iterator[int]:
    version = upload_frame(
        admin, pd.DataFrame({"x": range(8), "y": [0, 1] * 4}), tmp_path, f"ui-{uuid.uuid4().hex[:6]}"
    )
    with session_scope(platform_settings.database_url) as s:
        job = TrainingJob(
            name="ui-job",
            owner_id=admin.account()["id"],
            dataset_version_id=version["id"],
            template="tabular_mlp",
            config={"epochs": 5},
            status=JobStatus.FAILED,
            message="<img src=x onerror=alert(1)>",
        )
        # A job that is still going keeps the job list refreshing while the test moves on to another page.
        waiting = TrainingJob(name="ui-waiting", owner_id=job.owner_id, dataset_version_id=version["id"],
                              template="tabular_mlp", config={"epochs": 1}, status=JobStatus.CREATED)  # fmt: skip
        s.add_all([job, waiting])
        s.flush()
        for step in range(1, 6):
            s.add_all(
                JobMetric(job_id=job.id, step=step, key=k, value=v)
                for k, v in {"loss": 1 / step, "val_loss": 1.2 / step, "val_accuracy": 0.5 + step / 20}.items()
            )
        job_id, waiting_id = job.id, waiting.id
    yield job_id
    admin.delete_job(waiting_id)


def test_login_then_follow_a_job_and_browse(browser, running_platform, finished_job: int, tmp_path: Path) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(running_platform.api_url)
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "wrong-password-9")
    page.click("button[type=submit]")
    page.wait_for_selector("#error:not([hidden])")
    assert "Wrong username or password" in page.inner_text("#error")

    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Training jobs")
    page.wait_for_timeout(7_000)  # the list has refreshed itself at least twice

    page.goto(f"{running_platform.api_url}/#/jobs/{finished_job}")
    page.wait_for_selector("#metrics-chart[data-points='5']")
    page.wait_for_timeout(4_000)  # the list left behind must not draw itself over the job
    header = page.inner_text("main section h2")
    assert f"Job {finished_job}" in header and "FAILED" in header
    assert "<img src=x onerror=alert(1)>" in page.inner_text("main")  # shown as text
    assert not dialogs  # and never run
    page.screenshot(path=str(tmp_path / "job.png"), full_page=True)

    page.click("text=Datasets")
    page.wait_for_selector("text=New dataset")
    assert "ui-" in page.inner_text("main table")
    page.click("text=Log out")
    page.wait_for_selector("form#login")


def test_train_from_the_form_and_watch_it_live(browser, running_platform, admin: Client, tmp_path: Path) -> None:  # noqa: ANN001
    train, _ = breast_cancer_split()
    version = upload_frame(admin, train, tmp_path, f"ui-train-{uuid.uuid4().hex[:6]}")
    page = logged_in(browser, running_platform.api_url)

    page.select_option("select[name=dataset_version_id]", str(version["id"]))
    page.select_option("select[name=target_column]", TARGET)
    page.fill("input[name=epochs]", "3")
    page.fill("input[name=num_workers]", "1")
    page.click("main form button[type=submit]")
    page.wait_for_function("location.hash.startsWith('#/jobs/')")
    page.wait_for_selector("#metrics-chart[data-points='3']", timeout=240_000)
    page.wait_for_selector("main h2 .status.SUCCEEDED", timeout=60_000)
    assert "Model version" in page.inner_text("main")
    job_id = int(page.evaluate("location.hash.split('/')[2]"))
    logged = admin.job_steps(job_id)["total_steps"]  # about ten per epoch by default
    assert logged >= 3 * 5, logged
    page.wait_for_selector(f"#steps-chart[data-points='{logged}']")
    page.screenshot(path=str(tmp_path / "trained.png"), full_page=True)


@pytest.fixture
def tuned_run(admin: Client, platform_settings: Settings, tmp_path: Path) -> Iterator[int]:
    version = upload_frame(
        admin, pd.DataFrame({"x": range(8), "y": [0, 1] * 4}), tmp_path, f"ui-tune-{uuid.uuid4().hex[:6]}"
    )
    search = {"metric": "val_loss", "mode": "min", "scheduler": "asha", "num_samples": 3, "space": {}}
    histories = {"SUCCEEDED": [0.9, 0.5, 0.3], "EARLY_STOPPED": [1.2], "STOPPED": [1.0, 0.7]}
    with session_scope(platform_settings.database_url) as s:
        run = TuningRun(
            name="ui-tune",
            owner_id=admin.account()["id"],
            dataset_version_id=version["id"],
            template="tabular_mlp",
            config={},
            search=search,
            status=JobStatus.SUCCEEDED,
        )
        s.add(run)
        s.flush()
        trials = [
            TuningTrial(
                run_id=run.id,
                trial_key=status.lower(),
                config={"learning_rate": 0.001},
                status=status,
                iterations=len(losses),
                best_value=min(losses),
                message="<b>bold</b>",
                history=[{"training_iteration": i + 1, "val_loss": v} for i, v in enumerate(losses)],
            )
            for status, losses in histories.items()
        ]
        s.add_all(trials)
        s.flush()
        run.best_trial_id = trials[0].id
        run_id = run.id
    yield run_id
    with session_scope(platform_settings.database_url) as s:
        s.execute(delete(TuningTrial).where(TuningTrial.run_id == run_id))
        s.execute(delete(TuningRun).where(TuningRun.id == run_id))


def test_a_tuning_run_shows_its_trials_on_one_chart(browser, running_platform, tuned_run: int, tmp_path: Path) -> None:  # noqa: ANN001
    page = logged_in(browser, running_platform.api_url)
    page.click("header >> text=Tuning")
    page.click(f"main a[href='#/tuning/{tuned_run}']")
    page.wait_for_selector("#trials-chart[data-points='3']")  # epochs 1-3 across the three trials
    trials = page.inner_text("#trials")
    assert all(status in trials for status in ("SUCCEEDED", "EARLY_STOPPED", "STOPPED")), trials
    assert "<b>bold</b>" in trials  # user-influenced text is shown, not rendered
    assert "best trial" in page.inner_text("main section")
    page.screenshot(path=str(tmp_path / "tuning.png"), full_page=True)
