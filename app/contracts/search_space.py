"""A tuning run's search: the space in JSON, metric and mode, the scheduler (ASHA, FIFO or PBT), the search
algorithm, trial counts.

`{"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 0.1}, "batch_size": {"type": "choice",
"values": [16, 32, 64]}}`; every bound and choice is checked against the training config it will be put into,
so a trial can never start with a value the job itself would refuse.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.contracts.train_config import METRICS, TrainConfig

TUNABLE = ("learning_rate", "batch_size", "weight_decay", "momentum", "hidden_units", "optimizer")
Tunable = Literal["learning_rate", "batch_size", "weight_decay", "momentum", "hidden_units", "optimizer"]
# PBT hands one trial's weights and optimizer state to another mid-training: the parameters that shape them (the
# network's width, the optimizer's kind) must be the same in every trial.
PBT_FIXED = ("hidden_units", "optimizer")
ASHA_OPTIONS = ("max_t", "grace_period", "reduction_factor")
PBT_OPTIONS = ("perturbation_interval", "hyperparam_mutations", "quantile_fraction", "synchronous")


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

    def clamp(self, value: Any) -> Any:
        """`value` moved into this parameter's range (PBT multiplies values by 0.8 or 1.2, past the bounds)."""
        if self.type == "choice":
            return value
        if self.type == "randint":
            return min(max(int(value), int(self.low or 0)), int(self.high or 0) - 1)
        return min(max(float(value), float(self.low or 0)), float(self.high or 0))

    def samples(self) -> list[Any]:
        """Values that bound what this parameter can produce."""
        if self.type == "choice":
            return list(self.values or [])
        if self.type == "randint":
            return [int(self.low or 0), int(self.high or 0) - 1]
        return [self.low, self.high]


class SearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    space: dict[Tunable, Param] = Field(min_length=1, description="The parameters to tune, each with its range.")
    metric: str | None = Field(default=None, description="Default: the training config's metric.")
    mode: Literal["min", "max"] | None = None
    num_samples: int = Field(default=8, ge=1, le=1000, description="Number of trials.")
    max_concurrent_trials: int = Field(default=2, ge=1, le=64)
    search_alg: Literal["random", "optuna"] = "optuna"
    scheduler: Literal["asha", "fifo", "pbt"] = "asha"
    max_t: int | None = Field(default=None, ge=1, description="ASHA: most epochs a trial runs; default epochs.")
    grace_period: int = Field(default=1, ge=1, description="ASHA: epochs before a trial may be stopped.")
    reduction_factor: float = Field(default=2.0, gt=1, le=100)
    perturbation_interval: int | None = Field(
        default=None, ge=1, description="PBT: epochs between perturbations; default a quarter of the epochs."
    )
    hyperparam_mutations: list[str] | None = Field(
        default=None, description="PBT: the space's parameters it perturbs; default all of them."
    )
    quantile_fraction: float = Field(
        default=0.25, gt=0, le=0.5, description="PBT: the bottom fraction of trials that copies the top fraction."
    )
    synchronous: bool = Field(
        default=False,
        description="PBT: every trial waits at each perturbation point and all are ranked together, which is fairer"
        " when trials take turns (num_samples > max_concurrent_trials) but pauses each trial at every point.",
    )
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
        update: dict[str, Any] = {"metric": metric, "mode": self.mode or METRICS[base.task][metric]}
        if self.scheduler == "pbt":
            return self.model_copy(update={**update, **self._resolve_pbt(base)})
        misplaced = sorted(set(PBT_OPTIONS) & self.model_fields_set)
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)}: PBT options; set 'scheduler' to 'pbt' to use them.")
        max_t = self.max_t or base.epochs
        if self.grace_period > max_t:
            raise ValueError(f"grace_period {self.grace_period} exceeds max_t {max_t}.")
        return self.model_copy(update={**update, "max_t": max_t})

    def _resolve_pbt(self, base: TrainConfig) -> dict[str, Any]:
        misplaced = sorted(set(ASHA_OPTIONS) & self.model_fields_set)
        if misplaced:
            raise ValueError(
                f"{', '.join(misplaced)}: ASHA options, not used by PBT (its trials train for the config's 'epochs'"
                " and are never stopped early); remove them or use 'scheduler': 'asha'."
            )
        if self.search_alg == "optuna" and "search_alg" in self.model_fields_set:
            raise ValueError(
                "search_alg 'optuna' cannot drive PBT: PBT starts its trials from random configs and then changes"
                " them itself; use 'search_alg': 'random' (the default with PBT)."
            )
        fixed = sorted(set(PBT_FIXED) & set(self.space))
        if fixed:
            raise ValueError(
                f"PBT cannot tune {fixed}: trials take over each other's weights and optimizer state, so those must"
                " be the same in every trial; set them in the base config, or use 'scheduler': 'asha'."
            )
        if base.epochs < 2:
            raise ValueError("PBT needs 'epochs' >= 2: it perturbs trials between epochs.")
        interval = self.perturbation_interval or max(1, base.epochs // 4)
        if interval >= base.epochs:
            raise ValueError(
                f"perturbation_interval {interval} must be below epochs {base.epochs}, or PBT never perturbs."
            )
        mutations = list(self.space) if self.hyperparam_mutations is None else self.hyperparam_mutations
        unknown = sorted(set(mutations) - set(self.space))
        if unknown or not mutations:
            raise ValueError(
                f"hyperparam_mutations {unknown or '[]'}: PBT perturbs parameters of the search space; choose from"
                f" {sorted(self.space)}."
            )
        return {
            "search_alg": "random",
            "max_t": base.epochs,
            "perturbation_interval": interval,
            "hyperparam_mutations": sorted(set(mutations)),
        }

    def clamp(self, config: dict[str, Any]) -> dict[str, Any]:
        """`config` with every value of the space moved back into the space's range."""
        return {**config, **{name: p.clamp(config[name]) for name, p in self.space.items() if name in config}}
