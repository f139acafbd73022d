"""A tuning run's search checked against its base config: PBT's options, and the defaults it fills in."""

from __future__ import annotations

import pytest

from app.contracts.search_space import SearchConfig
from app.contracts.train_config import TrainConfig

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


def test_pbt_keeps_chosen_options() -> None:
    search = resolve(scheduler="pbt", perturbation_interval=3, hyperparam_mutations=["momentum"], quantile_fraction=0.5)
    assert (search.perturbation_interval, search.hyperparam_mutations, search.quantile_fraction) == (
        3,
        ["momentum"],
        0.5,
    )


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
