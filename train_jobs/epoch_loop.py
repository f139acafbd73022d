"""The epoch loop every template's workers share: optimizer, LR schedule, early stopping, per-epoch reports,
checkpoints every `checkpoint_interval` epochs, and resuming from the latest checkpoint.

A template's loop builds its data loader, model, loss and evaluation, then hands them to `run_epochs`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import ray.train
import torch
from torch import nn
from torch.utils.data import DataLoader

from app.contracts.train_config import TrainConfig, better
from train_jobs import runtime

SEED = 0

# Turns a training batch's inputs into what the model takes (e.g. normalise, augment), drawing randomness only from
# the generator it is given.
PrepareBatch = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


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
        for group in optimizer.param_groups:  # as torch's other schedules record it: a PBT hand-over keeps the decay
            group.setdefault("initial_lr", group["lr"])
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=config.mode, patience=s.patience, factor=s.factor
        )
    return None


def use_hyperparameters(config: TrainConfig, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    """Puts `config`'s hyperparameters into an optimizer (and LR schedule) restored from a state trained with other
    ones, as when a PBT trial continues another's: the restored state carries the old learning rate, momentum and
    weight decay. The schedule's decay so far is kept, applied to the new learning rate."""
    for group in optimizer.param_groups:
        base = group.get("initial_lr", group["lr"])
        group["lr"] = config.learning_rate * (group["lr"] / base if base else 1.0)
        group["weight_decay"] = config.weight_decay
        if "momentum" in group:
            group["momentum"] = config.momentum
        if "initial_lr" in group:
            group["initial_lr"] = config.learning_rate
    if hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [config.learning_rate] * len(optimizer.param_groups)


def batch_generator(epoch: int, rank: int) -> torch.Generator:
    """The random source of one rank's training batches in one epoch: a resumed run draws what an uninterrupted one
    would have."""
    return torch.Generator().manual_seed(SEED + 1_000_003 * (epoch + 1) + rank)


def run_epochs(
    config: TrainConfig,
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    evaluate: Callable[[nn.Module], dict[str, float]],
    prepare: PrepareBatch | None = None,
    start_from: ray.train.Checkpoint | None = None,
) -> None:
    """Trains `model` (already prepared for DDP) over `loader` for the job's epochs, resuming from the latest
    checkpoint, else from `start_from` (a PBT trial's). `evaluate(model)` gives the validation metrics; `prepare`
    transforms training inputs only."""
    context = ray.train.get_context()
    rank = context.get_world_rank()
    optimizer = build_optimizer(config, model)
    scheduler = build_scheduler(config, optimizer)
    stopping = config.early_stopping
    progress: dict[str, Any] = {"epoch": 0, "best": None, "bad_epochs": 0}

    state = runtime.restore()
    handed_over = state is None and start_from is not None
    if handed_over:
        state = runtime.load_checkpoint(start_from)
    if state:  # resumed after a worker failure or a retry: continue where the last checkpoint left off
        runtime.unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        if handed_over:
            use_hyperparameters(config, optimizer, scheduler)
        progress = state["progress"]
        if rank == 0:
            print(f"Resumed from the checkpoint of epoch {progress['epoch']}.", flush=True)

    every = config.log_every_n_steps
    steps = StepWindow(max(1, min(50, len(loader) // 10)) if every is None else every, context.get_world_size())
    for epoch in range(progress["epoch"], config.epochs):
        started = time.perf_counter()
        if context.get_world_size() > 1:
            loader.sampler.set_epoch(epoch)
        generator = batch_generator(epoch, rank)
        model.train()
        total, count = 0.0, 0
        for batch, (x, y) in enumerate(loader):
            if prepare is not None:
                x = prepare(x, generator)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            value = loss.item()
            total += value * len(y)
            count += len(y)
            steps.add(epoch, epoch * len(loader) + batch + 1, value, len(y), optimizer.param_groups[0]["lr"])
        # Every rank evaluates the same weights on the whole validation set, so all take the same decisions.
        metrics: dict[str, Any] = {"epoch": epoch + 1, "loss": total / max(count, 1)}
        metrics |= evaluate(model)
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
    runtime.close_step_log()


class StepWindow:
    """Averages the loss over the batches since the last logged step and logs every `every` batches (0: never)
    through `runtime.log_step`, which only a job's rank 0 records. Samples per second count every worker's batches
    (each trains a batch of the same size per step)."""

    def __init__(self, every: int, world_size: int) -> None:
        self.every, self.world_size = every, world_size
        self.loss, self.samples, self.since = 0.0, 0, time.perf_counter()

    def add(self, epoch: int, step: int, loss: float, samples: int, lr: float) -> None:
        if not self.every:
            return
        self.loss += loss * samples
        self.samples += samples
        if step % self.every:
            return
        now = time.perf_counter()
        runtime.log_step(
            {
                "step": step,
                "epoch": epoch + 1,
                "loss": self.loss / self.samples,
                "lr": lr,
                "samples_per_s": self.samples * self.world_size / max(now - self.since, 1e-9),
            }
        )
        self.loss, self.samples, self.since = 0.0, 0, now


def _fmt(metrics: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "epoch")
