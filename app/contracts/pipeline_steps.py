"""Preprocessing steps as typed requests: one model per op with its options, types and ranges, told apart by `op`.

A misspelt or out-of-range option is refused when the run is asked for, naming the field, instead of running with a
default. The fitting is `app.services.data.pipeline_fit`; rows stored before these models keep loading there, since
it reads plain dicts.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Column = Annotated[str, Field(min_length=1, max_length=256)]
Columns = Annotated[
    list[Column] | None,
    Field(default=None, max_length=10_000, description="Default: the dataset's feature configuration."),
]


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Impute(_Step):
    op: Literal["impute"]
    columns: Columns = None
    strategy: Literal["mean", "median", "most_frequent", "constant", "drop"] = "mean"
    fill_value: str | float | bool | None = Field(default=None, description="strategy constant: the value filled in.")

    @model_validator(mode="after")
    def _fill_value(self) -> Impute:
        if self.strategy == "constant" and self.fill_value is None:
            raise ValueError("strategy 'constant' needs a fill_value")
        return self


class Outliers(_Step):
    op: Literal["outliers"]
    columns: Columns = None
    method: Literal["iqr", "zscore"] = "iqr"
    action: Literal["clip", "drop"] = "clip"
    factor: float = Field(default=1.5, gt=0, le=1000, description="iqr: outside [Q1 - k*IQR, Q3 + k*IQR].")
    threshold: float = Field(default=3.0, gt=0, le=1000, description="zscore: |value - mean| / std above this.")


class Cast(_Step):
    op: Literal["cast"]
    types: dict[Column, Literal["int", "float", "str", "bool"]] = Field(min_length=1, max_length=10_000)


class Encode(_Step):
    op: Literal["encode"]
    columns: Columns = None
    method: Literal["ordinal", "onehot"] = "onehot"


class Scale(_Step):
    op: Literal["scale"]
    columns: Columns = None
    method: Literal["standard", "minmax"] = "standard"


class Select(_Step):
    op: Literal["select"]
    columns: Columns = Field(default=None, description="Keep exactly these (and the target); or give a method.")
    method: Literal["variance", "correlation"] | None = None
    threshold: float = Field(default=0.0, ge=0, description="variance: keep above it; correlation: |r| at least it.")
    target: Column | None = Field(default=None, description="correlation: default the feature config's target.")

    @model_validator(mode="after")
    def _columns_or_method(self) -> Select:
        if not self.columns and self.method is None:
            raise ValueError("give 'columns', or method 'variance' or 'correlation'")
        return self


class Validate(_Step):
    op: Literal["validate"]
    dtypes: dict[Column, Literal["numeric", "int", "float", "str", "bool"]] | None = None
    ranges: dict[Column, tuple[float, float]] | None = Field(default=None, description="{column: [min, max]}")
    unique: list[Column] | None = None


PipelineStep = Annotated[
    Impute | Outliers | Cast | Encode | Scale | Select | Validate,
    Field(discriminator="op"),
]


def stored(step: BaseModel) -> dict[str, Any]:
    """A step as a run stores it: the options the user gave (defaults are the fitting's), without nulls."""
    return step.model_dump(exclude_unset=True, exclude_none=True)
