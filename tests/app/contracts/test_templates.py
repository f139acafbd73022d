"""The template registry and each template's data contract, checked without torch: what the services refuse before
a job is queued, and how a prediction row's image is decoded."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from app.contracts.image_cnn import InvalidData as InvalidImages
from app.contracts.image_cnn import check_classes, decode_rows, resolve_config
from app.contracts.tabular_mlp import InvalidData, check_frame
from app.contracts.templates import CUSTOM_TEMPLATE, TEMPLATES
from app.contracts.train_config import ImageOptions, TrainConfig

ROOT = Path(__file__).resolve().parents[3]


def frame() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [10, 10, 20, 20], "label": ["a", "b", "a", "b"]})


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_template_names_its_driver_and_code_files_that_exist() -> None:
    assert CUSTOM_TEMPLATE in TEMPLATES
    for name, template in TEMPLATES.items():
        driver = ROOT / (template.entrypoint.replace(".", "/") + ".py")
        assert driver.is_file(), (name, template.entrypoint)
        assert all((ROOT / path).is_file() for path in template.code), (name, template.code)


@pytest.mark.parametrize(
    ("data", "target", "match"),
    [
        (frame(), "nope", "not in the data"),
        (frame().assign(colour=["r", "g", "b", "r"]), "label", "colour"),
        (frame().assign(label="a"), "label", "2 to"),
        (frame()[["label"]], "label", "no feature columns"),
        (frame().assign(label=["a", None, "b", "a"]), "label", "missing"),
    ],
)
def test_check_frame_names_the_problem(data: pd.DataFrame, target: str, match: str) -> None:
    with pytest.raises(InvalidData, match=match):
        check_frame(data, target)


def test_regression_needs_a_numeric_target() -> None:
    with pytest.raises(InvalidData, match="regression needs a numeric target"):
        check_frame(frame(), "label", task="regression")


def test_classes_need_two_to_a_hundred() -> None:
    with pytest.raises(InvalidImages, match="1 class folder"):
        check_classes(["cat", "cat"])
    assert check_classes(["dog", "cat", "dog"]) == ["cat", "dog"]


def test_resolve_config_fills_image_options_and_refuses_what_it_cannot_train() -> None:
    resolved = resolve_config(TrainConfig(target_column="label"))
    assert resolved.image == ImageOptions()
    with pytest.raises(InvalidImages, match="classification"):
        resolve_config(TrainConfig(target_column="label", task="regression"))
    with pytest.raises(InvalidImages, match="target_column to 'label'"):
        resolve_config(TrainConfig(target_column="species"))


def test_prediction_rows_take_base64_images_and_name_the_bad_row() -> None:
    encoded = base64.b64encode(png(Image.new("RGB", (20, 20), (200, 10, 10)))).decode()
    images = decode_rows([{"image": encoded}, {"image": "data:image/png;base64," + encoded}], 8, 3)
    assert images.shape == (2, 3, 8, 8) and images[1, :, 4, 4].tolist() == [200, 10, 10]
    for rows, match in [
        ([{"image": encoded}, {"picture": encoded}], "Row 1 needs 'image'"),
        ([{"image": 5}], "Row 0 needs 'image'"),
        ([{"image": "not base64!"}], "Row 0: 'image' is not valid base64"),
        ([{"image": base64.b64encode(b"plain text").decode()}], "Row 0's image is not a readable image"),
    ]:
        with pytest.raises(InvalidImages, match=match):
            decode_rows(rows, 8, 3)
