"""The image template's training loop, run by every Ray Train worker (DDP).

Images travel as uint8 through the object store and the data loader (4x smaller than floats); each training batch
is normalised and augmented on the worker's device, validation batches only normalised.
"""

from __future__ import annotations

from typing import Any

import ray
import torch
from ray.train.torch import prepare_data_loader, prepare_model
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from app.contracts.train_config import Augmentation, parse
from train_jobs import runtime
from train_jobs.augment import augment
from train_jobs.epoch_loop import SEED, PrepareBatch, run_epochs
from train_jobs.templates.image_cnn import ImageSpec, build_model, normalise

EVAL_BATCH = 256


def evaluate(spec: ImageSpec, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Loss and accuracy over the whole validation set, in batches; no augmentation."""
    model.eval()
    device = next(model.parameters()).device
    loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), EVAL_BATCH):
            x = normalise(spec, images[start : start + EVAL_BATCH].to(device))
            y = labels[start : start + EVAL_BATCH].to(device)
            out = model(x)
            loss += nn.functional.cross_entropy(out, y, reduction="sum").item()
            correct += int((out.argmax(dim=1) == y).sum())
    n = max(len(images), 1)
    return {"val_loss": loss / n, "val_accuracy": correct / n}


def prepare_batch(spec: ImageSpec, options: Augmentation) -> PrepareBatch:
    """Normalise, then augment: training batches only."""

    def prepare(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return augment(normalise(spec, images), options, generator)

    return prepare


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    config = parse(loop_config["config"])
    spec = ImageSpec.from_dict(loop_config["spec"])
    runtime.mark_running(loop_config.get("job_id"))
    torch.manual_seed(SEED)
    x_train, y_train, x_val, y_val = (torch.from_numpy(a) for a in ray.get(loop_config["arrays"]))
    loader = prepare_data_loader(
        DataLoader(TensorDataset(x_train, y_train), batch_size=config.batch_size, shuffle=True)
    )
    model = prepare_model(build_model(spec))
    options = config.image.augmentation if config.image else Augmentation()
    run_epochs(
        config,
        model,
        loader,
        nn.CrossEntropyLoss(),
        lambda m: evaluate(spec, m, x_val, y_val),
        prepare_batch(spec, options),
    )
