"""The training templates: for each, the module its Ray job runs, the files that are its code lineage, and the
dataset formats it trains on."""

from __future__ import annotations

from dataclasses import dataclass

from app.contracts import formats, image_cnn, tabular_mlp


@dataclass(frozen=True)
class Template:
    entrypoint: str  # module run as the Ray job's driver
    code: tuple[str, ...]  # files (from the project root) whose hash is the model's code lineage
    formats: tuple[str, ...] = formats.TABULAR  # dataset formats it trains on


CUSTOM_TEMPLATE = "custom"
TEMPLATES = {
    tabular_mlp.TEMPLATE_NAME: Template(
        entrypoint="train_jobs.train_tabular",
        code=(
            "train_jobs/train_tabular.py",
            "train_jobs/tabular_loop.py",
            "train_jobs/epoch_loop.py",
            "train_jobs/runtime.py",
            "app/contracts/train_config.py",
            "app/contracts/tabular_mlp.py",
            "train_jobs/templates/tabular_mlp.py",
        ),
    ),
    image_cnn.TEMPLATE_NAME: Template(
        entrypoint="train_jobs.train_image",
        code=(
            "train_jobs/train_image.py",
            "train_jobs/image_loop.py",
            "train_jobs/augment.py",
            "train_jobs/epoch_loop.py",
            "train_jobs/train_tabular.py",
            "train_jobs/runtime.py",
            "app/contracts/train_config.py",
            "app/contracts/image_cnn.py",
            "train_jobs/templates/image_cnn.py",
        ),
        formats=(formats.IMAGES,),
    ),
    # The user's uploaded code; its hash is the code's sha256 (see app.services.training.custom_code).
    CUSTOM_TEMPLATE: Template(entrypoint="train_jobs.train_custom", code=()),
}
