"""The image CNN template: zip decoding (channels inferred), normalisation, the network, prediction, config."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.contracts.image_cnn import InvalidData, resolve_config
from app.contracts.train_config import ImageOptions, TrainConfig
from app.storage.local import LocalStore
from tests.utils.images import shapes_zip
from train_jobs.artifacts import save_artifact
from train_jobs.templates.image_cnn import ImageSpec, build_model, fit_spec, load_artifact, normalise, predict, read_zip
from train_jobs.train_image import prepare_data


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_zip_is_decoded_resized_and_labelled(tmp_path: Path) -> None:
    images, labels = read_zip(shapes_zip(tmp_path / "shapes.zip", per_class=4), 12)
    assert images.shape == (12, 3, 12, 12) and images.dtype == np.uint8
    assert sorted(set(labels)) == ["circle", "square", "triangle"] and labels.count("square") == 4


def test_grey_images_give_one_channel_and_a_colour_image_makes_it_three(tmp_path: Path) -> None:
    path = tmp_path / "grey.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("dark/1.png", png(Image.new("L", (20, 10), 30)))
        archive.writestr("light/1.png", png(Image.new("L", (5, 5), 220)))
    images, labels = read_zip(path, 8)
    assert images.shape == (2, 1, 8, 8) and labels == ["dark", "light"]
    assert images[0].max() == 30 and images[1].min() == 220
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("light/2.png", png(Image.new("RGBA", (8, 8), (255, 0, 0, 128))))
    images, _ = read_zip(path, 8)
    assert images.shape == (3, 3, 8, 8)
    assert images[2, :, 0, 0].tolist() == [255, 0, 0]  # alpha dropped, red kept


def test_unreadable_image_names_the_member(tmp_path: Path) -> None:
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a/1.png", png(Image.new("RGB", (4, 4))))
        archive.writestr("b/broken.png", b"not an image")
    with pytest.raises(InvalidData, match="broken.png is not a readable image"):
        read_zip(path, 8)


def test_normalisation_is_fitted_on_training_images_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 3, 8, 8), dtype=np.uint8)
    spec = fit_spec(images, ["a", "b"], ImageOptions(size=8))
    scaled = normalise(spec, torch.from_numpy(images))
    np.testing.assert_allclose(scaled.mean(dim=(0, 2, 3)).numpy(), [0, 0, 0], atol=1e-5)
    np.testing.assert_allclose(scaled.std(dim=(0, 2, 3), unbiased=False).numpy(), [1, 1, 1], atol=1e-4)
    assert ImageSpec.from_dict(spec.to_dict()) == spec
    constant = fit_spec(np.full((3, 1, 8, 8), 7, dtype=np.uint8), ["a", "b"], ImageOptions(size=8))
    assert torch.isfinite(normalise(constant, torch.full((1, 1, 8, 8), 7, dtype=torch.uint8))).all()


@pytest.mark.parametrize(("size", "channels"), [(8, 1), (16, 3), (33, 3)])
def test_model_gives_one_logit_per_class(size: int, channels: int) -> None:
    norm = {"means": [0.5] * channels, "stds": [0.2] * channels}
    spec = ImageSpec(classes=["a", "b", "c"], size=size, channels=channels, **norm)
    model = build_model(spec)
    assert model(torch.zeros(5, channels, size, size)).shape == (5, 3)
    out = predict(model, spec, np.zeros((2, channels, size, size), dtype=np.uint8))
    assert set(out["labels"]) <= {"a", "b", "c"}
    assert all(len(p) == 3 and sum(p) == pytest.approx(1.0) for p in out["probabilities"])


def test_split_is_seeded_stratified_and_keeps_images_with_their_labels(tmp_path: Path) -> None:
    images, labels = read_zip(shapes_zip(tmp_path / "shapes.zip", per_class=10), 16)
    config = resolve_config(TrainConfig(target_column="label", image={"size": 16}))
    spec, (x_train, y_train, x_val, y_val) = prepare_data(images, labels, config)
    assert spec.classes == ["circle", "square", "triangle"] and spec.channels == 3
    assert len(x_train) == 24 and np.bincount(y_val).tolist() == [2, 2, 2]
    _, again = prepare_data(images, labels, config)
    assert np.array_equal(again[2], x_val) and np.array_equal(again[3], y_val)
    # Each held-out image is the one the zip has under its class (the colour says which).
    for image, label in zip(x_val, y_val, strict=True):
        matches = [i for i in range(len(images)) if np.array_equal(images[i], image)]
        assert {labels[i] for i in matches} == {spec.classes[label]}


def test_artifact_round_trips_through_storage(tmp_path: Path) -> None:
    spec = ImageSpec(classes=["a", "b"], size=8, channels=1, means=[0.4], stds=[0.2], conv_channels=4)
    torch.manual_seed(1)
    model = build_model(spec)
    store = LocalStore(tmp_path / "objects")
    save_artifact(store, "models/job-1", model, spec)  # type: ignore[arg-type]
    loaded, loaded_spec = load_artifact(store, "models/job-1")
    assert loaded_spec == spec
    images = np.random.default_rng(0).integers(0, 256, (3, 1, 8, 8), dtype=np.uint8)
    assert predict(loaded, spec, images) == predict(model, spec, images)
