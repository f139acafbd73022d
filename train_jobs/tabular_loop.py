"""The tabular template's training loop, run by every Ray Train worker (DDP).

Kept apart from the job's driver so that workers import only what the loop needs (torch, Ray Train, the template):
every worker process imports this module before its first step, so each import here is start-up time.
"""

from __future__ import annotations

from typing import Any

import ray
import torch
from ray.train.torch import get_device, prepare_data_loader, prepare_model
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from app.contracts.train_config import parse
from train_jobs import runtime
from train_jobs.epoch_loop import SEED, run_epochs
from train_jobs.templates.tabular_mlp import TabularSpec, build_model


def evaluate(spec: TabularSpec, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        out = model(x)
        if spec.task == "classification":
            return {
                "val_loss": nn.functional.cross_entropy(out, y).item(),
                "val_accuracy": (out.argmax(dim=1) == y).float().mean().item(),
            }
        # Errors in the target's own units; the loss stays on the standardised scale the network trains on.
        err = (out - y).double() * spec.target_std
        variance = float(((y.double() - y.double().mean()) ** 2).mean()) * spec.target_std**2
        mse = float((err**2).mean())
        return {
            "val_loss": nn.functional.mse_loss(out, y).item(),
            "val_rmse": mse**0.5,
            "val_mae": float(err.abs().mean()),
            "val_r2": 1.0 - mse / variance if variance > 0 else 0.0,
        }


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    config = parse(loop_config["config"])
    spec = TabularSpec.from_dict(loop_config["spec"])
    runtime.mark_running(loop_config.get("job_id"))
    torch.manual_seed(SEED)
    x_train, y_train, x_val, y_val = (torch.from_numpy(a) for a in ray.get(loop_config["arrays"]))
    loader = prepare_data_loader(
        DataLoader(TensorDataset(x_train, y_train), batch_size=config.batch_size, shuffle=True)
    )
    model = prepare_model(build_model(spec))
    device = get_device()  # the validation split goes where prepare_model put the model (the worker's GPU if any)
    x_val, y_val = x_val.to(device), y_val.to(device)
    loss_fn: nn.Module = nn.CrossEntropyLoss() if spec.task == "classification" else nn.MSELoss()
    run_epochs(
        config,
        model,
        loader,
        loss_fn,
        lambda m: evaluate(spec, m, x_val, y_val),
        start_from=loop_config.get("start_from"),
    )
