"""A tuning run's search: the space in JSON, metric and mode, ASHA, the search algorithm, trial counts.

`{"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 0.1}, "batch_size": {"type": "choice",
"values": [16, 32, 64]}}`; every bound and choice is checked against the training config it will be put into,
so a trial can never start with a value the job itself would refuse.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from train_jobs.job_config import METRICS, TrainConfig

TUNABLE = ("learning_rate", "batch_size", "weight_decay", "momentum", "hidden_units", "optimizer")


class Param(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["uniform", "loguniform", "choice", "randint"]
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> Param:
        if self.type == "choice":
            if not self.values:
                raise ValueError("a choice needs a non-empty 'values' list")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"{self.type} needs 'low' < 'high'")
        if self.type == "loguniform" and self.low <= 0:
            raise ValueError("loguniform needs 'low' > 0")
        if self.type == "randint" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError("randint needs integer 'low' and 'high' (high exclusive)")
        return self

    def samples(self) -> list[Any]:
        """Values that bound what this parameter can produce."""
        if self.type == "choice":
            return list(self.values or [])
        if self.type == "randint":
            return [int(self.low or 0), int(self.high or 0) - 1]
        return [self.low, self.high]


class SearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    space: dict[str, Param] = Field(min_length=1)
    metric: str | None = Field(default=None, description="Default: the training config's metric.")
    mode: Literal["min", "max"] | None = None
    num_samples: int = Field(default=8, ge=1, le=1000, description="Number of trials.")
    max_concurrent_trials: int = Field(default=2, ge=1, le=64)
    search_alg: Literal["random", "optuna"] = "optuna"
    scheduler: Literal["asha", "fifo"] = "asha"
    max_t: int | None = Field(default=None, ge=1, description="ASHA: most epochs a trial runs; default epochs.")
    grace_period: int = Field(default=1, ge=1, description="ASHA: epochs before a trial may be stopped.")
    reduction_factor: float = Field(default=2.0, gt=1, le=100)
    seed: int | None = Field(default=None, description="Seeds the search: the same seed samples the same trials.")

    def resolve(self, base: TrainConfig) -> SearchConfig:
        """Fills defaults from the base config and checks the space against it; raises ValueError."""
        unknown = sorted(set(self.space) - set(TUNABLE))
        if unknown:
            raise ValueError(f"Cannot tune {unknown}; tunable parameters: {', '.join(TUNABLE)}.")
        for name, param in self.space.items():
            for value in param.samples():
                try:
                    TrainConfig.model_validate({**base.model_dump(), name: value})
                except ValidationError as e:
                    raise ValueError(
                        f"Search space {name!r}: value {value!r} is invalid: {e.errors()[0]['msg']}."
                    ) from e
        metric = self.metric or base.metric or ""
        if metric not in METRICS[base.task]:
            raise ValueError(
                f"metric {metric!r} is not reported for {base.task}; use one of {sorted(METRICS[base.task])}."
            )
        max_t = self.max_t or base.epochs
        if self.grace_period > max_t:
            raise ValueError(f"grace_period {self.grace_period} exceeds max_t {max_t}.")
        return self.model_copy(
            update={"metric": metric, "mode": self.mode or METRICS[base.task][metric], "max_t": max_t}
        )

    def ray_space(self) -> dict[str, Any]:
        from ray import tune

        def convert(p: Param) -> Any:
            if p.type == "choice":
                return tune.choice(p.values)
            if p.type == "randint":
                return tune.randint(int(p.low or 0), int(p.high or 0))
            return (tune.loguniform if p.type == "loguniform" else tune.uniform)(p.low, p.high)

        return {name: convert(p) for name, p in self.space.items()}
