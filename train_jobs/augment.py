"""On-the-fly augmentation of a batch of normalised images (N, C, H, W), in plain torch ops.

Random draws come from the generator the caller passes (on the CPU, whatever the batch's device), so the same seed
gives the same batch on any machine. Each op changes each image of the batch independently.
"""

from __future__ import annotations

import torch
from torch.nn import functional

from app.contracts.train_config import Augmentation


def _draw(generator: torch.Generator, n: int, p: float, device: torch.device) -> torch.Tensor:
    """A (n, 1, 1, 1) mask: True for the images an op with probability `p` changes."""
    return (torch.rand(n, generator=generator) < p).view(-1, 1, 1, 1).to(device)


def horizontal_flip(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    return torch.where(_draw(generator, len(x), p, x.device), x.flip(3), x) if p > 0 else x


def vertical_flip(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    return torch.where(_draw(generator, len(x), p, x.device), x.flip(2), x) if p > 0 else x


def random_crop(x: torch.Tensor, size: int, padding: int, generator: torch.Generator) -> torch.Tensor:
    """A size x size window of each image (zero-padded by `padding` on each side first) at a random place, scaled
    back to the image's own size. Zero is the mean colour of normalised pixels, so padding adds no new colour."""
    height, width = x.shape[2:]
    padded = functional.pad(x, (padding, padding, padding, padding)) if padding else x
    tops = torch.randint(0, padded.shape[2] - size + 1, (len(x),), generator=generator).tolist()
    lefts = torch.randint(0, padded.shape[3] - size + 1, (len(x),), generator=generator).tolist()
    windows = zip(range(len(x)), tops, lefts, strict=True)
    crops = torch.stack([padded[i, :, t : t + size, s : s + size] for i, t, s in windows])
    if (size, size) == (height, width):
        return crops
    return functional.interpolate(crops, size=(height, width), mode="bilinear", align_corners=False)


def gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    if std <= 0:
        return x
    return x + torch.randn(x.shape, generator=generator).to(x.device) * std


def augment(x: torch.Tensor, options: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """Applies the configured ops in a fixed order: crop, flips, noise."""
    if options.crop_size is not None:
        x = random_crop(x, options.crop_size, options.crop_padding, generator)
    x = horizontal_flip(x, options.horizontal_flip, generator)
    x = vertical_flip(x, options.vertical_flip, generator)
    return gaussian_noise(x, options.noise_std, generator)
