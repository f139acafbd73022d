"""A tuning run's search space in Ray Tune's terms: what PBT may change."""

from __future__ import annotations

from app.contracts.search_space import SearchConfig
from app.contracts.train_config import TrainConfig
from train_jobs.tune_space import pbt_mutations, ray_space

BASE = TrainConfig(target_column="y", epochs=8)
SPACE = {
    "learning_rate": {"type": "loguniform", "low": 1e-4, "high": 0.1},
    "batch_size": {"type": "choice", "values": [16, 32, 64]},
    "momentum": {"type": "uniform", "low": 0.5, "high": 0.99},
}


def resolve(**search: object) -> SearchConfig:
    return SearchConfig.model_validate({"space": SPACE, **search}).resolve(BASE)


def test_pbt_mutates_every_parameter_by_default_and_shifts_choices() -> None:
    search = resolve(scheduler="pbt")
    assert set(pbt_mutations(search)) == set(SPACE)
    assert pbt_mutations(search)["batch_size"] == [16, 32, 64]  # a choice shifts to a neighbouring value


def test_pbt_mutates_only_the_chosen_parameters() -> None:
    assert list(pbt_mutations(resolve(scheduler="pbt", hyperparam_mutations=["momentum"]))) == ["momentum"]


def test_every_parameter_of_the_space_gets_a_sampler() -> None:
    assert set(ray_space(resolve())) == set(SPACE)
