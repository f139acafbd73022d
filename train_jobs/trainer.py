"""The TorchTrainer every platform run uses (jobs and tuning trials).

Ray Train always sets up its Ray Datasets machinery: a `DatasetManager` actor (one more fresh process importing
Ray Data on the first-metric path) and Ray Data's import in every worker. Platform loops feed tensors from the
object store, never Ray Datasets, so a run without datasets skips that set-up.
"""

from __future__ import annotations

from typing import Any

from ray.train.torch import TorchTrainer
from ray.train.v2._internal.callbacks.datasets import DatasetsCallback


class PlatformTorchTrainer(TorchTrainer):
    def _create_default_callbacks(self) -> list[Any]:
        callbacks = super()._create_default_callbacks()
        if self.datasets:
            return callbacks
        return [c for c in callbacks if not isinstance(c, DatasetsCallback)]
