"""Image CNN template (classification of an image zip, one folder per class): decoding and resizing, per-channel
normalisation fitted on the training images, a small conv net, prediction.

Training and serving share this module, so images are decoded, resized and normalised the same way in both.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from train_jobs.job_config import ImageOptions, TrainConfig

TEMPLATE_NAME = "image_cnn"
LABEL_COLUMN = "label"  # an image zip's class column, as its dataset version lists it
IMAGE_COLUMN = "image"  # a prediction row's field holding the encoded image
IMAGE_TASK = "image_classification"  # a model version's signature task: its deployment predicts encoded images
MAX_CLASSES = 100
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


class InvalidData(ValueError):
    """The data or configuration does not fit the template; the message says what to change."""


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


def resolve_config(config: TrainConfig) -> TrainConfig:
    """The job's config with its image options filled in; raises InvalidData for settings the template cannot use."""
    if config.task != "classification":
        raise InvalidData(f"The {TEMPLATE_NAME} template classifies images; set task to 'classification'.")
    if config.target_column != LABEL_COLUMN:
        raise InvalidData(
            f"An image zip's target is its class folder: set target_column to {LABEL_COLUMN!r} "
            f"(not {config.target_column!r})."
        )
    return config.model_copy(update={"image": config.image or ImageOptions()})


def check_classes(labels: list[str]) -> list[str]:
    """The sorted class names, or InvalidData when there are too few or too many."""
    classes = sorted(set(labels))
    if not 2 <= len(classes) <= MAX_CLASSES:
        raise InvalidData(
            f"The image zip has {len(classes)} class folder(s); the {TEMPLATE_NAME} template needs 2 to "
            f"{MAX_CLASSES}, e.g. 'cat/1.png', 'dog/2.png'."
        )
    return classes


def _open(data: bytes, name: str) -> Any:
    from PIL import Image, UnidentifiedImageError  # imported where images are decoded: workers start without it

    try:
        return Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InvalidData(f"{name} is not a readable image: {e}") from e


def decode(data: bytes, size: int, channels: int, name: str = "image") -> np.ndarray:
    """One image file as uint8 (channels, size, size): 1 channel is grey, 3 is RGB (alpha dropped)."""
    from PIL import Image

    with _open(data, name) as image:
        try:
            image = image.convert("L" if channels == 1 else "RGB").resize((size, size), Image.Resampling.BILINEAR)
        except (OSError, ValueError) as e:  # a truncated file fails only when its pixels are read
            raise InvalidData(f"{name} is not a readable image: {e}") from e
        pixels = np.asarray(image, dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


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
        with _open(data, name) as image:
            grey = grey and image.mode in _GRAY_MODES
    channels = 1 if grey else 3
    images = np.empty((len(files), channels, size, size), dtype=np.uint8)
    for i, (name, data, _) in enumerate(files):
        images[i] = decode(data, size, channels, name)
    return images, [label for _, _, label in files]


def decode_rows(rows: list[dict[str, Any]], size: int, channels: int) -> np.ndarray:
    """Prediction rows `{"image": "<base64 PNG/JPEG/...>"}` (a `data:` URL too) as uint8 (n, channels, size, size)."""
    images = []
    for i, row in enumerate(rows):
        value = row.get(IMAGE_COLUMN)
        if not isinstance(value, str) or not value:
            raise InvalidData(f"Row {i} needs {IMAGE_COLUMN!r}: a base64-encoded image (PNG, JPEG, ...).")
        payload = value.split(",", 1)[-1] if value.startswith("data:") else value
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as e:
            raise InvalidData(f"Row {i}: {IMAGE_COLUMN!r} is not valid base64 ({e}).") from e
        images.append(decode(data, size, channels, f"Row {i}'s image"))
    return np.stack(images)


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
