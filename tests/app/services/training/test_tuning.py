"""A Ray Tune run on the real cluster: trials as rows with their history, ASHA stopping some early, PBT handing
checkpoints between trials, the best trial registered as a model version; bad searches and templates refused; a run
stopped."""

from __future__ import annotations

import re

import pytest

from app.client import ApiError, Client
from app.cluster import jobs as ray_jobs
from app.core.config import Settings
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
        ({**SEARCH, "space": {"dropout": {"type": "uniform", "low": 0, "high": 1}}}, "space.dropout"),
        ({**SEARCH, "space": {"batch_size": {"type": "choice", "values": []}}}, "non-empty"),
        ({**SEARCH, "grace_period": 9}, "grace_period"),
        ({**SEARCH, "metric": "val_accuracy"}, "is not reported for regression"),
        ({"space": SEARCH["space"], "scheduler": "pbt", "search_alg": "optuna"}, "'optuna' cannot drive PBT"),
        ({**SEARCH, "scheduler": "pbt", "search_alg": "random"}, "max_t, reduction_factor: ASHA options"),
        ({"space": SEARCH["space"], "scheduler": "pbt"}, r"PBT cannot tune \['hidden_units'\]"),
        ({"space": SEARCH["space"], "perturbation_interval": 2}, "PBT options"),
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
    if stopped["ray_job_id"]:  # else it was stopped in the queue, before the scheduler handed it to Ray
        wait_for(
            lambda: (s := ray_jobs.state(platform_settings, stopped["ray_job_id"])) and s.status in ended,
            timeout_s=60,
            what="Ray to end the stopped run",
        )
    assert admin.get_tune(run["id"])["status"] == "STOPPED"
    with pytest.raises(ApiError) as err:
        admin.stop_tune(run["id"])
    assert err.value.status == 409


@pytest.mark.parametrize("template", ["image_cnn", "custom"])
def test_tuning_is_for_the_tabular_template(admin: Client, version: dict, template: str) -> None:
    before = len(admin.list_tunes())
    with pytest.raises(ApiError, match="template: Input should be 'tabular_mlp'") as err:
        admin.create_tune(dataset_version_id=version["id"], target_column=TARGET, template=template, search=SEARCH)
    assert err.value.status == 422
    assert len(admin.list_tunes()) == before


PBT_EPOCHS = 2
PBT_SEARCH = {
    # Learning rates apart by orders of magnitude: the trials rank clearly after one epoch.
    "space": {"learning_rate": {"type": "loguniform", "low": 1e-6, "high": 0.1}},
    "metric": "val_loss",
    "scheduler": "pbt",
    "num_samples": 4,
    "max_concurrent_trials": 2,
    "perturbation_interval": 1,
    # Synchronous, half the population: at the first perturbation point the worse two trials must copy the better
    # two, whatever order the trials report in.
    "quantile_fraction": 0.5,
    "synchronous": True,
    "seed": 0,
}


def test_pbt_trials_take_over_better_trials_and_the_best_becomes_a_model(admin: Client, version: dict) -> None:
    run = admin.create_tune(
        dataset_version_id=version["id"],
        target_column=TARGET,
        num_workers=1,
        batch_size=64,
        epochs=PBT_EPOCHS,
        search=PBT_SEARCH,
    )
    assert run["search"]["search_alg"] == "random" and run["search"]["hyperparam_mutations"] == ["learning_rate"]
    seen: set[str] = set()
    done = admin.wait_tune(run["id"], timeout_s=900, on_update=lambda r: seen.update(t["status"] for t in r["trials"]))
    assert done["status"] == "SUCCEEDED", done["message"] + admin.tune_logs(run["id"])[-3000:]
    # Two trials run at a time, four in all: synchronous PBT pauses the first two at the perturbation point until the
    # other two get there, and their rows say so meanwhile.
    assert "PAUSED" in seen, seen

    trials = done["trials"]
    assert len(trials) == PBT_SEARCH["num_samples"]
    assert all(t["status"] == "SUCCEEDED" for t in trials), [(t["status"], t["message"]) for t in trials]
    exploits = [
        (trial["id"], int(donor), int(epoch))
        for trial in trials
        for donor, epoch in re.findall(r"Exploited trial (\d+) at epoch (\d+)", trial["message"])
    ]
    assert len(exploits) >= 2, [t["message"] for t in trials]
    # Perturbed at epoch 1 only: at the last epoch there is nothing left to train.
    assert all(donor in {t["id"] for t in trials} - {trial} and epoch == 1 for trial, donor, epoch in exploits)
    for trial in (t for t in trials if t["id"] in {e[0] for e in exploits}):
        # It trained on with its new learning rate (the row's config), not the donor's restored with the optimizer.
        assert trial["history"][-1]["lr"] == pytest.approx(trial["config"]["learning_rate"])
    # A trial that went on from a copied checkpoint reports the epochs after the donor's, not from the start.
    for trial in trials:
        assert [p["epoch"] for p in trial["history"]] == [p["training_iteration"] for p in trial["history"]]

    best = min((t for t in trials if t["best_value"] is not None), key=lambda t: t["best_value"])
    assert done["best_trial_id"] == best["id"]
    model_version = admin.get_model_version(done["model_version_id"])
    assert model_version["metrics"]["val_loss"] == best["best_value"]
    assert model_version["lineage"]["search"]["scheduler"] == "pbt"
