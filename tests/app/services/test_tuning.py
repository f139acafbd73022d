"""A Ray Tune run on the real cluster: trials as rows with their history, ASHA stopping some early, the best
trial registered as a model version; bad searches refused; a run stopped."""

from __future__ import annotations

import pytest

from app.cluster import jobs as ray_jobs
from app.core.config import Settings
from app.sdk import ApiError, Client
from tests.utils.factories import TARGET, breast_cancer_split, upload_frame
from tests.utils.wait import wait_for

pytestmark = pytest.mark.ray

MAX_T = 4
SEARCH = {
    # Continuous values: no two trials tie, so ASHA's median rule has something to cut.
    "space": {
        "learning_rate": {"type": "loguniform", "low": 1e-6, "high": 0.1},
        "hidden_units": {"type": "randint", "low": 4, "high": 64},
    },
    "metric": "val_loss",
    "num_samples": 6,
    "max_concurrent_trials": 2,
    "max_t": MAX_T,
    "grace_period": 1,
    "reduction_factor": 2,
    "search_alg": "optuna",
}


@pytest.fixture(scope="module")
def version(admin: Client, tmp_path_factory: pytest.TempPathFactory) -> dict:
    train, _ = breast_cancer_split()
    return upload_frame(admin, train, tmp_path_factory.mktemp("tune"), "tune-breast-cancer")


@pytest.mark.parametrize(
    ("search", "match"),
    [
        ({**SEARCH, "space": {"learning_rate": {"type": "uniform", "low": -1, "high": 0.1}}}, "learning_rate"),
        ({**SEARCH, "space": {"dropout": {"type": "uniform", "low": 0, "high": 1}}}, "Cannot tune"),
        ({**SEARCH, "space": {"batch_size": {"type": "choice", "values": []}}}, "non-empty"),
        ({**SEARCH, "grace_period": 9}, "grace_period"),
        ({**SEARCH, "metric": "val_accuracy"}, "is not reported for regression"),
    ],
)
def test_bad_searches_are_refused(admin: Client, version: dict, search: dict, match: str) -> None:
    before = len(admin.list_tunes())
    task = {"task": "regression", "target_column": "mean radius"} if "regression" in match else {}
    with pytest.raises(ApiError, match=match) as err:
        admin.create_tune(**{"dataset_version_id": version["id"], "target_column": TARGET, **task, "search": search})
    assert err.value.status == 422
    assert len(admin.list_tunes()) == before


def test_asha_stops_weak_trials_and_the_best_becomes_a_model(
    admin: Client, version: dict, platform_settings: Settings
) -> None:
    run = admin.create_tune(
        dataset_version_id=version["id"], target_column=TARGET, num_workers=1, batch_size=32, search=SEARCH
    )
    assert run["search"]["mode"] == "min" and run["search"]["max_t"] == MAX_T
    done = admin.wait_tune(run["id"], timeout_s=900)
    assert done["status"] == "SUCCEEDED", done["message"] + admin.tune_logs(run["id"])[-3000:]

    trials = done["trials"]
    assert len(trials) == SEARCH["num_samples"]
    for trial in trials:
        assert set(trial["config"]) == {"learning_rate", "hidden_units"}
        assert [point["training_iteration"] for point in trial["history"]] == list(range(1, trial["iterations"] + 1))
    stopped_early = [t for t in trials if t["status"] == "EARLY_STOPPED"]
    assert stopped_early and all(t["iterations"] < MAX_T for t in stopped_early)
    assert any(t["status"] == "SUCCEEDED" and t["iterations"] == MAX_T for t in trials)

    best = min((t for t in trials if t["best_value"] is not None), key=lambda t: t["best_value"])
    assert done["best_trial_id"] == best["id"]
    model_version = admin.get_model_version(done["model_version_id"])
    assert model_version["stage"] == "DRAFT" and model_version["training_job_id"] is None
    assert model_version["metrics"]["val_loss"] == best["best_value"]
    lineage = model_version["lineage"]
    assert lineage["tuning_run_id"] == run["id"]
    assert lineage["trial"]["params"] == best["config"]
    assert lineage["config"]["learning_rate"] == best["config"]["learning_rate"]


def test_stop_a_tuning_run(admin: Client, version: dict, platform_settings: Settings) -> None:
    run = admin.create_tune(dataset_version_id=version["id"], target_column=TARGET, num_workers=1, search=SEARCH)
    stopped = admin.stop_tune(run["id"])
    assert stopped["status"] == "STOPPED"
    ended = ("STOPPED", "SUCCEEDED")  # SUCCEEDED: its driver started, saw the run stopped and exited
    wait_for(
        lambda: (s := ray_jobs.state(platform_settings, stopped["ray_job_id"])) and s.status in ended,
        timeout_s=60,
        what="Ray to end the stopped run",
    )
    assert admin.get_tune(run["id"])["status"] == "STOPPED"
    with pytest.raises(ApiError) as err:
        admin.stop_tune(run["id"])
    assert err.value.status == 409
