"""A tuning run's search checked against its base config: PBT's options, and the defaults it fills in."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from train_jobs.epoch_loop import build_optimizer, build_scheduler, use_hyperparameters
from train_jobs.job_config import TrainConfig
from train_jobs.search_space import SearchConfig

BASE = TrainConfig(target_column="y", epochs=8)
SPACE = {
    "learning_rate": {"type": "loguniform", "low": 1e-4, "high": 0.1},
    "batch_size": {"type": "choice", "values": [16, 32, 64]},
    "momentum": {"type": "uniform", "low": 0.5, "high": 0.99},
}


def resolve(**search: object) -> SearchConfig:
    return SearchConfig.model_validate({"space": SPACE, **search}).resolve(BASE)


def test_pbt_defaults_random_search_every_parameter_and_the_epochs() -> None:
    search = resolve(scheduler="pbt")
    assert search.search_alg == "random"
    assert search.hyperparam_mutations == sorted(SPACE)
    assert (search.perturbation_interval, search.max_t, search.quantile_fraction) == (2, 8, 0.25)
    assert set(search.pbt_mutations()) == set(SPACE)
    assert search.pbt_mutations()["batch_size"] == [16, 32, 64]  # a choice shifts to a neighbouring value


def test_pbt_keeps_chosen_options() -> None:
    search = resolve(scheduler="pbt", perturbation_interval=3, hyperparam_mutations=["momentum"], quantile_fraction=0.5)
    assert (search.perturbation_interval, search.hyperparam_mutations, search.quantile_fraction) == (
        3,
        ["momentum"],
        0.5,
    )
    assert list(search.pbt_mutations()) == ["momentum"]


@pytest.mark.parametrize(
    ("search", "match"),
    [
        ({"perturbation_interval": 8}, "must be below epochs 8"),
        ({"perturbation_interval": 0}, "greater than or equal to 1"),
        ({"quantile_fraction": 0.6}, "less than or equal to 0.5"),
        ({"quantile_fraction": 0}, "greater than 0"),
        ({"hyperparam_mutations": ["weight_decay"]}, r"choose from \['batch_size', 'learning_rate', 'momentum'\]"),
        ({"hyperparam_mutations": []}, "PBT perturbs parameters of the search space"),
        ({"search_alg": "optuna"}, "PBT starts its trials from random configs"),
        ({"max_t": 4}, "max_t: ASHA options"),
        ({"grace_period": 2, "reduction_factor": 3}, "grace_period, reduction_factor: ASHA options"),
        ({"space": {**SPACE, "hidden_units": {"type": "randint", "low": 4, "high": 64}}}, "cannot tune"),
        ({"space": {"optimizer": {"type": "choice", "values": ["adam", "sgd"]}}}, "optimizer"),
    ],
)
def test_bad_pbt_searches_say_why(search: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        resolve(scheduler="pbt", **search)


def test_pbt_needs_two_epochs() -> None:
    with pytest.raises(ValueError, match="epochs' >= 2"):
        SearchConfig.model_validate({"space": SPACE, "scheduler": "pbt"}).resolve(BASE.model_copy(update={"epochs": 1}))


@pytest.mark.parametrize("scheduler", ["asha", "fifo"])
def test_pbt_options_need_pbt(scheduler: str) -> None:
    with pytest.raises(ValueError, match="perturbation_interval, quantile_fraction: PBT options"):
        resolve(scheduler=scheduler, perturbation_interval=2, quantile_fraction=0.5)


def test_asha_resolution_is_unchanged() -> None:
    search = resolve(max_t=4)
    assert (search.scheduler, search.search_alg, search.max_t, search.hyperparam_mutations) == (
        "asha",
        "optuna",
        4,
        None,
    )


def test_perturbed_values_are_moved_back_into_the_space() -> None:
    search = resolve(scheduler="pbt", space={**SPACE, "batch_size": {"type": "randint", "low": 8, "high": 65}})
    clamped = search.clamp({"learning_rate": 0.12, "batch_size": 77, "momentum": 0.4})
    assert clamped == {"learning_rate": 0.1, "batch_size": 64, "momentum": 0.5}
    assert search.clamp({"learning_rate": 0.01, "batch_size": 8, "momentum": 0.9}) == {
        "learning_rate": 0.01,
        "batch_size": 8,
        "momentum": 0.9,
    }


def decay_once(scheduler: Any) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        worst = math.inf if scheduler.mode == "min" else -math.inf
        for _ in range(scheduler.patience + 1):  # no improvement for longer than `patience` epochs: one decay
            scheduler.step(worst)
    else:
        scheduler.step()


@pytest.mark.parametrize(
    ("schedule", "decay"),
    [({"type": "step", "step_size": 1, "gamma": 0.1}, 0.1), ({"type": "plateau", "patience": 1, "factor": 0.5}, 0.5)],
)
def test_a_handed_over_optimizer_takes_the_new_hyperparameters_and_keeps_the_schedule(
    schedule: dict[str, Any], decay: float
) -> None:
    old = TrainConfig(target_column="y", optimizer="sgd", learning_rate=0.1, momentum=0.9, lr_scheduler=schedule)
    model = torch.nn.Linear(2, 1)
    optimizer = build_optimizer(old, model)
    scheduler = build_scheduler(old, optimizer)
    optimizer.step()
    decay_once(scheduler)  # lr = 0.1 * decay
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}

    new = old.model_copy(update={"learning_rate": 0.02, "momentum": 0.5, "weight_decay": 0.001})
    optimizer = build_optimizer(new, model)
    scheduler = build_scheduler(new, optimizer)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * decay)  # what restoring alone would keep

    use_hyperparameters(new, optimizer, scheduler)
    group = optimizer.param_groups[0]
    assert group["lr"] == pytest.approx(0.02 * decay)
    assert (group["momentum"], group["weight_decay"]) == (0.5, 0.001)
    optimizer.step()
    decay_once(scheduler)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.02 * decay**2)
