"""Image CNN template (classification of an image zip, one folder per class): reading the zip, per-channel
normalisation fitted on the training images, a small conv net, prediction. Decoding an image and which data it takes
are its contract (`app.contracts.image_cnn`).

Training and serving share this module and its contract, so images are decoded, resized and normalised the same
way in both.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from app.contracts.image_cnn import InvalidData, decode, open_image
from app.contracts.train_config import ImageOptions

_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


@dataclass(frozen=True)
class ImageSpec:
    """What the model expects: image size and channels, the normalisation, the classes, the network's widths."""

    classes: list[str]
    size: int
    channels: int
    means: list[float]
    stds: list[float]
    conv_channels: int = 16
    hidden_units: int = 64
    task: str = "classification"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageSpec:
        return cls(**data)


def read_zip(path: Path, size: int) -> tuple[np.ndarray, list[str]]:
    """Every image of a class-folder zip as uint8 (n, channels, size, size), with its class. One channel when every
    image is grey, else three."""
    from app.services.data.formats import image_entries  # the upload's own rules for which members are images

    with zipfile.ZipFile(path) as archive:
        entries = image_entries(archive.namelist())
        files = [(name, archive.read(name), label) for name, label in entries]
    if not files:
        raise InvalidData("The zip holds no images.")
    grey = True
    for name, data, _ in files:
        with open_image(data, name) as image:
            grey = grey and image.mode in _GRAY_MODES
    channels = 1 if grey else 3
    images = np.empty((len(files), channels, size, size), dtype=np.uint8)
    for i, (name, data, _) in enumerate(files):
        images[i] = decode(data, size, channels, name)
    return images, [label for _, _, label in files]


def fit_spec(images: np.ndarray, classes: list[str], options: ImageOptions, hidden_units: int = 64) -> ImageSpec:
    """Per-channel mean and std of the (training) images, in 0..1 pixel units."""
    pixels = images.astype(np.float64) / 255.0
    means = pixels.mean(axis=(0, 2, 3))
    stds = pixels.std(axis=(0, 2, 3))
    return ImageSpec(
        classes=classes,
        size=options.size,
        channels=images.shape[1],
        means=[float(m) for m in means],
        stds=[float(s) if s > 1e-6 else 1.0 for s in stds],
        conv_channels=options.conv_channels,
        hidden_units=hidden_units,
    )


def normalise(spec: ImageSpec, images: torch.Tensor) -> torch.Tensor:
    """uint8 (n, c, h, w) images to standardised float32 on the same device."""
    means = torch.tensor(spec.means, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    stds = torch.tensor(spec.stds, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - means) / stds


def build_model(spec: ImageSpec) -> nn.Module:
    """Three conv blocks (width w, 2w, 4w; each halves the image), global average pooling, a two-layer head."""
    w = spec.conv_channels

    def block(inputs: int, outputs: int) -> list[nn.Module]:
        return [nn.Conv2d(inputs, outputs, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(spec.channels, w),
        *block(w, 2 * w),
        *block(2 * w, 4 * w),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * w, spec.hidden_units),
        nn.ReLU(),
        nn.Linear(spec.hidden_units, len(spec.classes)),
    )


def predict(model: nn.Module, spec: ImageSpec, images: np.ndarray) -> dict[str, list[Any]]:
    """Predicted classes and per-class probabilities for uint8 (n, channels, size, size) images."""
    model.eval()
    with torch.no_grad():
        probabilities = torch.softmax(model(normalise(spec, torch.from_numpy(images))), dim=1).numpy()
    labels = [spec.classes[i] for i in probabilities.argmax(axis=1)]
    return {"labels": labels, "probabilities": [[float(p) for p in row] for row in probabilities]}


def load_artifact(store: Any, prefix: str) -> tuple[nn.Module, ImageSpec]:
    """The model and spec `train_jobs.artifacts.save_artifact` stored under `prefix` (weights loaded with
    weights_only: no pickled code runs)."""
    from train_jobs.artifacts import SPEC, WEIGHTS

    spec = ImageSpec.from_dict(json.loads(store.get_bytes(f"{prefix}/{SPEC}")))
    model = build_model(spec)
    model.load_state_dict(torch.load(io.BytesIO(store.get_bytes(f"{prefix}/{WEIGHTS}")), weights_only=True))
    model.eval()
    return model, spec
