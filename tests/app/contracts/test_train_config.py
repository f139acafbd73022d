from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.contracts.train_config import TrainConfig, better


def test_metric_and_mode_default_by_task() -> None:
    assert (TrainConfig(target_column="y").metric, TrainConfig(target_column="y").mode) == ("val_accuracy", "max")
    regression = TrainConfig(target_column="y", task="regression", early_stopping={"patience": 2})
    assert (regression.metric, regression.mode) == ("val_loss", "min")
    assert regression.early_stopping is not None and regression.early_stopping.metric == "val_loss"


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"metric": "val_r2"}, "not reported for classification"),
        ({"task": "regression", "early_stopping": {"metric": "val_accuracy"}}, "early_stopping.metric"),
        ({"learning_rate": -0.1}, "learning_rate"),
        ({"optimizer": "lion"}, "optimizer"),
        ({"lr_scheduler": {"type": "plateau", "factor": 1.5}}, "factor"),
        ({"gpus_per_worker": -1}, "gpus_per_worker"),
        ({"log_every_n_steps": -1}, "log_every_n_steps"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_configs_name_the_field(fields: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        TrainConfig(target_column="y", **fields)


def test_demand_is_per_worker_times_workers() -> None:
    config = TrainConfig(
        target_column="y", num_workers=3, cpus_per_worker=2, gpus_per_worker=0.5, memory_per_worker_mb=10
    )
    assert config.worker_resources() == {"CPU": 2, "GPU": 0.5, "memory": 10 * 2**20}
    assert config.demand() == {"CPU": 6, "GPU": 1.5, "memory": 30 * 2**20}


def test_better_respects_mode_and_min_delta() -> None:
    assert better(0.5, None, "max")
    assert better(0.6, 0.5, "max") and not better(0.55, 0.5, "max", min_delta=0.1)
    assert better(0.4, 0.5, "min") and not better(0.5, 0.5, "min")


@pytest.mark.parametrize(
    ("image", "match"),
    [
        ({"augmentation": {"rotate": 10}}, "rotate"),
        ({"augmentation": {"horizontal_flip": 1.5}}, "horizontal_flip"),
        ({"augmentation": {"vertical_flip": -0.1}}, "vertical_flip"),
        ({"augmentation": {"noise_std": -1}}, "noise_std"),
        ({"size": 16, "augmentation": {"crop_size": 24}}, "larger than the image"),
        ({"size": 16, "augmentation": {"crop_size": 24, "crop_padding": 3}}, "use at most 22"),
        ({"augmentation": {"crop_padding": 2}}, "needs augmentation.crop_size"),
        ({"size": 2}, "size"),
    ],
)
def test_bad_image_options_name_the_problem(image: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        TrainConfig(target_column="label", image=image)


def test_crop_as_large_as_the_padded_image_is_allowed() -> None:
    image = {"size": 16, "augmentation": {"crop_size": 20, "crop_padding": 2}}
    options = TrainConfig(target_column="label", image=image)
    assert options.image is not None and options.image.augmentation.crop_size == 20
