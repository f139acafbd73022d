"""The image_cnn template's data contract: an image zip's class folders, the config it trains with, and how a
prediction row's image is decoded (the model server and the control plane decode the same way, so a bad image is
refused before it reaches a replica). The network and the normalisation are the workload's
(`train_jobs.templates.image_cnn`).
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

import numpy as np

from app.contracts.train_config import ImageOptions, TrainConfig

TEMPLATE_NAME = "image_cnn"
LABEL_COLUMN = "label"  # an image zip's class column, as its dataset version lists it
IMAGE_COLUMN = "image"  # a prediction row's field holding the encoded image
IMAGE_TASK = "image_classification"  # a model version's signature task: its deployment predicts encoded images
MAX_CLASSES = 100


class InvalidData(ValueError):
    """The data or configuration does not fit the template; the message says what to change."""


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


def open_image(data: bytes, name: str) -> Any:
    """A PIL image of an encoded file, or InvalidData naming it."""
    from PIL import Image, UnidentifiedImageError  # imported where images are decoded: workers start without it

    try:
        return Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InvalidData(f"{name} is not a readable image: {e}") from e


def decode(data: bytes, size: int, channels: int, name: str = "image") -> np.ndarray:
    """One image file as uint8 (channels, size, size): 1 channel is grey, 3 is RGB (alpha dropped)."""
    from PIL import Image

    with open_image(data, name) as image:
        try:
            image = image.convert("L" if channels == 1 else "RGB").resize((size, size), Image.Resampling.BILINEAR)
        except (OSError, ValueError) as e:  # a truncated file fails only when its pixels are read
            raise InvalidData(f"{name} is not a readable image: {e}") from e
        pixels = np.asarray(image, dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


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
