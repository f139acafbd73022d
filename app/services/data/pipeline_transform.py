"""Preprocessing steps: fitting (statistics from the data) and transforming (rows, with the fitted state).

The fitted state is plain JSON (imputation values, clip bounds, scaler parameters, encoder vocabularies, kept
columns): training records it and serving applies `transform(state, frame, serving=True)` to raw rows, so rows are
transformed exactly as in training and no pickled code is ever loaded. The statistics follow scikit-learn's
(SimpleImputer, StandardScaler with ddof=0, MinMaxScaler, OrdinalEncoder/OneHotEncoder with sorted categories,
VarianceThreshold), so a pandas + scikit-learn reference gives the same numbers.

Fitting reads the data through a `Source` of one or more blocks: each step asks for mergeable statistics
(app/services/data/pipeline_stats.py) of the previous steps' output, so the same code fits one in-memory frame
(`FrameSource`, used by `fit`) and a dataset streamed block by block from Ray's object store
(train_jobs/streaming_fit.py), and both apply the steps with `apply_steps`, as serving does.

The step specs and applying them are in `pipeline_ops`, fitting each step in `pipeline_fit`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from app.services.data.pipeline_fit import FIT, Context, Source
from app.services.data.pipeline_ops import OPS, PipelineError, apply_step, apply_steps


class FrameSource:
    """One in-memory frame as a single block; the transformed frame is kept, so each step is applied once."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._original, self._frame = frame, frame
        self._steps: list[dict[str, Any]] = []

    def sample(self, steps: list[dict[str, Any]]) -> pd.DataFrame:
        if steps[: len(self._steps)] != self._steps:
            self._steps, self._frame = [], self._original
        for step in steps[len(self._steps) :]:
            self._frame = apply_step(step, self._frame, serving=False)
        self._steps = list(steps)
        return self._frame

    # The sources' shared signature: a block source reads only `columns`; one in-memory frame has them all.
    def collect(self, steps: list[dict[str, Any]], columns: list[str], partial: Callable[[pd.DataFrame], Any]) -> list:  # noqa: ARG002
        return [partial(self.sample(steps))]


def fit(steps: list[dict[str, Any]], frame: pd.DataFrame, features: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fits every step on the output of the steps before it; returns the JSON state."""
    return fit_source(steps, FrameSource(frame), features)


def fit_transform(
    steps: list[dict[str, Any]], frame: pd.DataFrame, features: dict[str, Any] | None = None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The JSON state and the transformed frame."""
    source = FrameSource(frame)
    state = fit_source(steps, source, features)
    return state, source.sample(state["steps"])


def fit_source(steps: list[dict[str, Any]], source: Source, features: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fits every step on the output of the steps before it, with statistics merged over the source's blocks."""
    features = features or {}
    fitted: list[dict[str, Any]] = []
    frame = source.sample([])
    input_columns = [str(c) for c in frame.columns]
    for index, step in enumerate(steps):
        op = step.get("op")
        if op not in OPS:
            raise PipelineError(f"Step {index} has op {op!r}; use one of {', '.join(OPS)}.")
        context = Context(source, list(fitted), frame)
        try:
            state = FIT[op](step, context, features)
        except PipelineError as e:
            raise PipelineError(f"Step {index} ({op}): {e}") from e
        fitted.append({"op": op, **state})
        frame = source.sample(fitted)
    return {
        "version": 1,
        "input_columns": input_columns,
        "target": features.get("target"),
        "steps": fitted,
        "output_columns": [str(c) for c in frame.columns],
    }


def transform(state: dict[str, Any], frame: pd.DataFrame, *, serving: bool = False) -> pd.DataFrame:
    """Applies a fitted pipeline. With `serving`, rows are never dropped (a prediction is owed for each): missing
    values a drop step would have removed stay missing, and outliers a drop step would have removed are clipped to
    the fitted bounds. The target column need not be present."""
    return apply_steps(state["steps"], frame, serving=serving)
