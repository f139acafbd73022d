"""The epoch loop's optimizer and schedule when PBT hands a trial's state to another with new hyperparameters."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from app.contracts.train_config import TrainConfig
from train_jobs.epoch_loop import build_optimizer, build_scheduler, use_hyperparameters


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
