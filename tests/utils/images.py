"""Synthetic image-classification zips (one folder per class) drawn with Pillow."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
COLOURS = {"circle": (40, 200, 60), "square": (220, 40, 40), "triangle": (40, 60, 220)}


def shape_image(shape: str, rng: np.random.Generator, size: int = 16) -> Image.Image:
    """A shape of its class's colour (varied a little) at a random place on a grey background."""
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(90, 140, 3)))
    draw = ImageDraw.Draw(image)
    extent = int(rng.integers(size // 2, size - 2))
    left, top = (int(v) for v in rng.integers(0, size - extent + 1, 2))
    box = (left, top, left + extent - 1, top + extent - 1)
    colour = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in COLOURS[shape])
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(left, box[3]), (box[2], box[3]), ((left + box[2]) // 2, top)], fill=colour)
    return image


def shapes_zip(
    path: Path, per_class: int = 30, shapes: tuple[str, ...] = SHAPES, size: int = 16, seed: int = 0
) -> Path:
    """A zip of `per_class` PNGs for each shape, laid out as `shapes/<shape>/<n>.png`."""
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w") as archive:
        for shape in shapes:
            for n in range(per_class):
                buffer = io.BytesIO()
                shape_image(shape, rng, size).save(buffer, format="PNG")
                archive.writestr(f"shapes/{shape}/{n}.png", buffer.getvalue())
    return path
