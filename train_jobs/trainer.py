"""The TorchTrainer every platform run uses (jobs and tuning trials), without the parts of Ray Train's default
set-up a platform run does not need. Each one is a fresh process on the path to the first metric, and on a small
node their start-ups compete with the training workers' own.

- Ray Datasets: Train always sets up a `DatasetManager` actor (and Ray Data's import in every worker). Platform
  loops feed tensors from the object store, never Ray Datasets, so a run without datasets skips it.
- The placement-group cleaner: a detached actor that polls the controller's liveness (through the dashboard, every
  second) to remove the workers' placement group if the controller dies. A job's Train run lives in the job's own
  driver, and Ray removes a job's placement groups when its driver exits, so a job does without it. A tuning trial
  keeps it: its Train run ends inside a longer-lived Tune driver, whose other trials would wait on a leaked group.
"""

from __future__ import annotations

from typing import Any

from ray.train.torch import TorchTrainer
from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback


class PlatformTorchTrainer(TorchTrainer):
    def __init__(self, *args: Any, run_owns_driver: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run_owns_driver = run_owns_driver

    def _create_default_callbacks(self) -> list[Any]:
        unneeded: tuple[type, ...] = () if self.datasets else (DatasetsCallback,)
        if self.run_owns_driver:
            unneeded += (PlacementGroupCleanerCallback,)
        return [c for c in super()._create_default_callbacks() if not isinstance(c, unneeded)]
