"""Mergeable statistics against numpy on the same values, split into uneven blocks: exact order statistics
(np.percentile's linear interpolation, np.median) from the blocks' windows, and also when buckets must be refined
down to single keys, and moments merged across blocks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from app.services.data import pipeline_stats as stats


def blocks_of(values: np.ndarray, rng: np.random.Generator) -> list[pd.DataFrame]:
    cuts = sorted(rng.integers(0, values.size + 1, 4))
    bounds = [0, *cuts, values.size]
    return [pd.DataFrame({"v": values[a:b]}) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def kinds(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "normal": rng.normal(0, 1, n),
        "few distinct": rng.integers(-3, 4, n).astype(float),
        "heavy tails, both signs": rng.standard_cauchy(n),
        "one value mostly": np.concatenate([np.full(n, 2.5), rng.normal(0, 1, 3)]),
        "signed zeros and infinities": np.concatenate([np.zeros(n), -np.zeros(3), [np.inf, -np.inf], [1e-300]]),
    }


@pytest.mark.parametrize(
    ("window", "gather_limit"),
    [(0, 1 << 20), (0, 7), (0, 0), (2048, 1 << 20), (3, 1 << 20), (1, 0)],
    ids=["gather", "refine once", "refine to single keys", "windows", "narrow windows", "narrowest, then refine"],
)
def test_quantiles_equal_numpy(window: int, gather_limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "WINDOW_ROWS", window)
    monkeypatch.setattr(stats, "GATHER_LIMIT", gather_limit)
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 400, 2001):
        for name, values in kinds(rng, n).items():
            values = values.copy()
            values[rng.random(values.size) < 0.1] = np.nan
            blocks = blocks_of(values, rng)
            got = stats.quantiles(["v"], {"v": [0.25, 0.75, 0.1, stats.MEDIAN]}, lambda f, b=blocks: [f(x) for x in b])
            present = values[~np.isnan(values)]
            if present.size == 0:
                assert all(np.isnan(got["v"]))
                continue
            expected = [*np.percentile(present, [25, 75, 10]), np.median(present)]
            assert got["v"] == [float(e) for e in expected], (name, n)  # bit for bit


def test_windows_decide_alike_blocks_in_one_pass_and_leave_the_rest_to_buckets() -> None:
    rng = np.random.default_rng(4)
    alike = [pd.DataFrame({"v": rng.normal(0, 1, 5000)}) for _ in range(8)]
    apart = [pd.DataFrame({"v": rng.normal(10 * i, 1, 5000)}) for i in range(8)]  # each block above the last
    for blocks, passes in ((alike, 1), (apart, 3)):  # windows; then windows, bucket counts, gathered bucket
        calls = []

        def run(partial: Any, blocks: list[pd.DataFrame] = blocks, calls: list[int] = calls) -> list[Any]:
            calls.append(1)
            return [partial(b) for b in blocks]

        got = stats.quantiles(["v"], {"v": [0.25, 0.75, stats.MEDIAN]}, run)
        values = np.concatenate([b["v"].to_numpy() for b in blocks])
        assert got["v"] == [*map(float, np.percentile(values, [25, 75])), float(np.median(values))]
        assert len(calls) == passes


def test_moments_merge_across_blocks() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(1e6, 3.0, 10_001)  # a large mean: naive sums of squares would lose the variance
    parts = [stats.moments(stats.present(b, "v")) for b in blocks_of(values, rng)]
    n, mean, m2, low, high = stats.combine_moments(parts)
    assert (n, low, high) == (values.size, values.min(), values.max())
    assert mean == pytest.approx(values.mean(), rel=1e-15)
    assert np.sqrt(m2 / n) == pytest.approx(values.std(), rel=1e-12)
    single = stats.moments(values)  # one block: numpy's own arithmetic
    assert (single[1], np.sqrt(single[2] / single[0])) == (values.mean(), values.std())


def test_correlation_merge_across_blocks() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, 5000)
    y = 0.3 * x + rng.normal(0, 1, 5000)
    x[::17] = np.nan
    cuts = [0, 1, 1200, 4000, 5000]
    parts = [stats.comoments(x[a:b], y[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    expected = pd.Series(x).corr(pd.Series(y))
    assert stats.correlation(stats.combine_comoments(parts)) == pytest.approx(expected, rel=1e-12)
    assert stats.correlation(stats.comoments(np.ones(10), np.arange(10.0))) == 0.0  # constant: no correlation
