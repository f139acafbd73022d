"""The tabular template's training loop, run by every Ray Train worker (DDP).

Kept apart from the job's driver so that workers import only what the loop needs (torch, Ray Train, the template):
every worker process imports this module before its first step, so each import here is start-up time.
"""

from __future__ import annotations

import time
from typing import Any

import ray
import ray.train
import torch
from ray.train.torch import prepare_data_loader, prepare_model
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from train_jobs import runtime
from train_jobs.job_config import TrainConfig, better, parse
from train_jobs.templates.tabular_mlp import TabularSpec, build_model

SEED = 0


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)


def build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    s = config.lr_scheduler
    if s.type == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=s.step_size, gamma=s.gamma)
    if s.type == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if s.type == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=config.mode, patience=s.patience, factor=s.factor
        )
    return None


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
    rank = ray.train.get_context().get_world_rank()
    runtime.mark_running(loop_config.get("job_id"))
    torch.manual_seed(SEED)
    x_train, y_train, x_val, y_val = (torch.from_numpy(a) for a in ray.get(loop_config["arrays"]))
    loader = prepare_data_loader(
        DataLoader(TensorDataset(x_train, y_train), batch_size=config.batch_size, shuffle=True)
    )
    model = prepare_model(build_model(spec))
    optimizer = build_optimizer(config, model)
    scheduler = build_scheduler(config, optimizer)
    loss_fn: nn.Module = nn.CrossEntropyLoss() if spec.task == "classification" else nn.MSELoss()
    stopping = config.early_stopping
    progress: dict[str, Any] = {"epoch": 0, "best": None, "bad_epochs": 0}

    state = runtime.restore()
    if state:  # resumed after a worker failure or a retry: continue where the last checkpoint left off
        runtime.unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        progress = state["progress"]
        if rank == 0:
            print(f"Resumed from the checkpoint of epoch {progress['epoch']}.", flush=True)

    for epoch in range(progress["epoch"], config.epochs):
        started = time.perf_counter()
        if ray.train.get_context().get_world_size() > 1:
            loader.sampler.set_epoch(epoch)
        model.train()
        total, count = 0.0, 0
        for x, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            count += len(y)
        # Every rank evaluates the same weights on the whole validation set, so all take the same decisions.
        metrics: dict[str, Any] = {"epoch": epoch + 1, "loss": total / max(count, 1)}
        metrics |= evaluate(spec, model, x_val, y_val)
        metrics["lr"] = optimizer.param_groups[0]["lr"]
        metrics["epoch_time_s"] = time.perf_counter() - started
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(metrics[config.metric])
        elif scheduler is not None:
            scheduler.step()

        stop = False
        if stopping is not None:
            value = metrics[stopping.metric]
            if better(value, progress["best"], config.metric_mode(stopping.metric), stopping.min_delta):
                progress["best"], progress["bad_epochs"] = value, 0
            else:
                progress["bad_epochs"] += 1
            stop = progress["bad_epochs"] >= stopping.patience
            metrics["early_stopped"] = int(stop)
        progress["epoch"] = epoch + 1
        if rank == 0:  # the job's log (streamed to clients) shows progress as it happens
            print(f"epoch {epoch + 1}/{config.epochs} " + _fmt(metrics), flush=True)
        last = stop or epoch + 1 == config.epochs
        if last or (epoch + 1) % config.checkpoint_interval == 0:
            runtime.report(
                metrics,
                {
                    "model": runtime.unwrap(model).state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "progress": dict(progress),
                },
            )
        else:
            runtime.report(metrics)
        if stop:
            break


def _fmt(metrics: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "epoch")
