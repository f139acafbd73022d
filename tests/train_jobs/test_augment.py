"""Augmentation ops on normalised image batches: shapes kept, seeded, each op doing what it says; training batches
only."""

from __future__ import annotations

import pytest
import torch

from app.contracts.train_config import Augmentation
from train_jobs.augment import augment, gaussian_noise, horizontal_flip, random_crop, vertical_flip
from train_jobs.epoch_loop import batch_generator
from train_jobs.image_loop import evaluate, prepare_batch
from train_jobs.templates.image_cnn import ImageSpec, build_model, normalise

ALL = Augmentation(horizontal_flip=0.5, vertical_flip=0.5, crop_size=6, crop_padding=2, noise_std=0.3)


def batch(n: int = 16, channels: int = 3, size: int = 8) -> torch.Tensor:
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(123))


def seeded(seed: int = 7) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("options", [Augmentation(), ALL, Augmentation(crop_size=12, crop_padding=2)])
def test_shape_and_dtype_are_kept(options: Augmentation) -> None:
    x = batch()
    out = augment(x, options, seeded())
    assert out.shape == x.shape and out.dtype == x.dtype


def test_same_seed_same_batch_other_seed_other_batch() -> None:
    x = batch()
    assert torch.equal(augment(x, ALL, seeded(1)), augment(x, ALL, seeded(1)))
    assert not torch.equal(augment(x, ALL, seeded(1)), augment(x, ALL, seeded(2)))


def test_no_options_change_nothing() -> None:
    x = batch()
    assert torch.equal(augment(x, Augmentation(), seeded()), x)


def test_flips_really_flip() -> None:
    x = batch()
    assert torch.equal(horizontal_flip(x, 1.0, seeded()), x.flip(3))
    assert torch.equal(vertical_flip(x, 1.0, seeded()), x.flip(2))
    assert torch.equal(horizontal_flip(x, 0.0, seeded()), x)
    # With p=0.5 each image is either itself or its mirror, and both happen in a batch of 64.
    x = batch(64)
    out = horizontal_flip(x, 0.5, seeded())
    kept = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    mirrored = [torch.equal(o, i.flip(2)) for o, i in zip(out, x, strict=True)]  # per image, width is dim 2
    assert all(k or m for k, m in zip(kept, mirrored, strict=True))
    assert 10 < sum(mirrored) < 54


def test_crop_with_padding_takes_a_shifted_window() -> None:
    x = batch(32)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    out = random_crop(x, 8, 2, seeded())
    offsets = set()
    for i in range(len(x)):
        found = [(t, s) for t in range(5) for s in range(5) if torch.equal(out[i], padded[i, :, t : t + 8, s : s + 8])]
        assert found, f"image {i} is not a window of its padded self"
        offsets.add(found[0])
    assert len(offsets) > 3  # windows at different places
    assert torch.equal(random_crop(x, 8, 0, seeded()), x)  # a window as large as the image is the image


def test_smaller_crop_is_scaled_back_to_the_image_size() -> None:
    x = batch()
    out = random_crop(x, 4, 0, seeded())
    assert out.shape == x.shape
    assert not torch.equal(out, x)


def test_noise_has_the_configured_std() -> None:
    x = torch.zeros(64, 3, 16, 16)
    noise = gaussian_noise(x, 0.5, seeded())
    assert abs(noise.std().item() - 0.5) < 0.02 and abs(noise.mean().item()) < 0.02
    assert torch.equal(gaussian_noise(x, 0.0, seeded()), x)


def test_training_batches_are_augmented_validation_is_not() -> None:
    spec = ImageSpec(classes=["a", "b"], size=8, channels=3, means=[0.5] * 3, stds=[0.25] * 3)
    images = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8, generator=seeded())
    labels = torch.tensor([0, 1] * 5)
    plain = normalise(spec, images)
    assert not torch.equal(prepare_batch(spec, Augmentation(noise_std=1.0))(images, seeded()), plain)
    assert torch.equal(prepare_batch(spec, Augmentation())(images, seeded()), plain)

    torch.manual_seed(0)
    model = build_model(spec)
    expected = torch.nn.functional.cross_entropy(model(plain), labels).item()
    metrics = evaluate(spec, model, images, labels)
    assert metrics["val_loss"] == pytest.approx(expected, rel=1e-5)
    assert metrics == evaluate(spec, model, images, labels)  # no random draw in validation


def test_batch_randomness_depends_on_epoch_and_rank_only() -> None:
    """A run resumed at epoch 3 draws for epoch 3 what an uninterrupted run draws."""
    x = batch()
    assert torch.equal(augment(x, ALL, batch_generator(3, 1)), augment(x, ALL, batch_generator(3, 1)))
    assert not torch.equal(augment(x, ALL, batch_generator(3, 1)), augment(x, ALL, batch_generator(4, 1)))
    assert not torch.equal(augment(x, ALL, batch_generator(3, 0)), augment(x, ALL, batch_generator(3, 1)))
