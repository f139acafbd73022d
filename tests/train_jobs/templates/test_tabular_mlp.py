from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from app.contracts.tabular_mlp import InvalidData
from train_jobs.templates.tabular_mlp import TabularSpec, build_model, encode_features, encode_labels, fit_spec, predict


def frame() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [10, 10, 20, 20], "label": ["a", "b", "a", "b"]})


def test_spec_standardises_with_training_statistics_and_round_trips() -> None:
    spec = fit_spec(frame(), "label")
    assert spec.feature_columns == ["x", "y"]
    assert spec.classes == ["a", "b"]
    encoded = encode_features(spec, frame())
    np.testing.assert_allclose(encoded.mean(axis=0), [0, 0], atol=1e-6)
    np.testing.assert_allclose(encoded.std(axis=0), [1, 1], atol=1e-6)
    assert TabularSpec.from_dict(spec.to_dict()) == spec
    assert encode_labels(spec, frame()["label"]).tolist() == [0, 1, 0, 1]


def test_constant_column_and_missing_values_do_not_produce_nan() -> None:
    data = frame().assign(c=5.0)
    spec = fit_spec(data, "label")
    rows = data.drop(columns="label").assign(x=[None, 1.0, 2.0, 3.0])
    assert np.isfinite(encode_features(spec, rows)).all()


def test_predict_returns_labels_and_probabilities() -> None:
    spec = fit_spec(frame(), "label")
    torch.manual_seed(0)
    result = predict(build_model(spec), spec, frame().drop(columns="label"))
    assert set(result["labels"]) <= {"a", "b"}
    np.testing.assert_allclose([sum(p) for p in result["probabilities"]], 1.0, rtol=1e-6)


def test_missing_input_column_is_named() -> None:
    spec = fit_spec(frame(), "label")
    with pytest.raises(InvalidData, match="'y'"):
        encode_features(spec, frame()[["x"]])


def test_regression_standardises_the_target_and_predicts_in_its_units() -> None:
    data = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "price": [10.0, 20.0, 30.0, 40.0]})
    spec = fit_spec(data, "price", task="regression")
    assert spec.classes == [] and spec.outputs == 1
    labels = encode_labels(spec, data["price"])
    assert labels.shape == (4, 1)
    np.testing.assert_allclose(labels.mean(), 0, atol=1e-6)
    torch.manual_seed(0)
    model = build_model(spec)
    with torch.no_grad():  # a network whose output is the scaled target predicts the target itself
        for p in model.parameters():
            p.zero_()
        model[-1].bias.fill_(float(labels[3, 0]))
    result = predict(model, spec, data.drop(columns="price"))
    np.testing.assert_allclose(result["labels"], [40.0] * 4, rtol=1e-5)
    assert result["probabilities"] == [[]] * 4
