"""Mergeable statistics for fitting pipeline steps over data that arrives in blocks.

Each statistic has a per-block partial and a combine over the partials in block order, so one process never needs
every row: moments (count, mean, squared deviations, min, max; merged with Chan et al.'s pairwise formulas, which
stay accurate where running sums of squares would cancel), co-moments for correlation, value counts and distinct
values. On a single block each gives exactly numpy's / pandas' number (mean = sum / n, std = sqrt(mean squared
deviation), ddof=0).

Order statistics (medians, IQR quartiles) are exact, not sketched. One pass gathers each block's values around its
own quantile positions; where the blocks are alike, that decides the wanted ranks exactly (`quantiles`). Otherwise
values are mapped to order-preserving 64-bit
keys and counted in 65,536 buckets by the top 16 bits; the bucket holding each wanted rank is then either gathered
(when it holds at most GATHER_LIMIT values) or counted again by the next 16 bits, and so on. Each round is one pass
over the data with bounded memory (a 65,536-entry count per column, or at most GATHER_LIMIT values); typical data
needs two passes. Interpolation follows numpy's linear method (np.percentile, np.median) bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

GATHER_LIMIT = 1 << 20
WINDOW_ROWS = 2048  # values each block gathers on either side of its own quantile position (0: bucket passes only)
MEDIAN = -1.0  # asks `quantiles` for np.median's value
_BUCKET_BITS = 16
_SIGN = np.uint64(1 << 63)

Moments = tuple[int, float, float, float, float]  # n, mean, sum of squared deviations, min, max
Pass = Callable[[Callable[[pd.DataFrame], Any]], list[Any]]  # runs a partial over every block, in block order


def present(frame: pd.DataFrame, column: str) -> np.ndarray:
    """The column's non-missing values as float64."""
    values = frame[column].to_numpy(dtype=float, na_value=np.nan)
    return values[~np.isnan(values)]


def moments(values: np.ndarray) -> Moments:
    n = int(values.size)
    if n == 0:
        return 0, 0.0, 0.0, np.inf, -np.inf
    mean = float(values.sum() / n)  # numpy's mean: pairwise sum, then divide
    deviations = values - mean
    return n, mean, float(np.multiply(deviations, deviations).sum()), float(values.min()), float(values.max())


def combine_moments(parts: list[Moments]) -> Moments:
    n, mean, m2, low, high = 0, 0.0, 0.0, np.inf, -np.inf
    for pn, pmean, pm2, plow, phigh in parts:
        if pn == 0:
            continue
        if n == 0:
            n, mean, m2, low, high = pn, pmean, pm2, plow, phigh
            continue
        total = n + pn
        delta = pmean - mean
        mean, m2 = mean + delta * pn / total, m2 + pm2 + delta * delta * n * pn / total
        n, low, high = total, min(low, plow), max(high, phigh)
    return n, mean, m2, low, high


CoMoments = tuple[int, float, float, float, float, float]  # n, mean x, mean y, co-deviation, m2 x, m2 y


def comoments(x: np.ndarray, y: np.ndarray) -> CoMoments:
    both = ~(np.isnan(x) | np.isnan(y))
    x, y = x[both], y[both]
    n = int(x.size)
    if n == 0:
        return 0, 0.0, 0.0, 0.0, 0.0, 0.0
    mx, my = float(x.sum() / n), float(y.sum() / n)
    dx, dy = x - mx, y - my
    return n, mx, my, float((dx * dy).sum()), float((dx * dx).sum()), float((dy * dy).sum())


def combine_comoments(parts: list[CoMoments]) -> CoMoments:
    n, mx, my, cxy, m2x, m2y = 0, 0.0, 0.0, 0.0, 0.0, 0.0
    for pn, pmx, pmy, pc, p2x, p2y in parts:
        if pn == 0:
            continue
        total = n + pn
        dx, dy = pmx - mx, pmy - my
        weight = n * pn / total
        cxy, m2x, m2y = cxy + pc + dx * dy * weight, m2x + p2x + dx * dx * weight, m2y + p2y + dy * dy * weight
        mx, my, n = mx + dx * pn / total, my + dy * pn / total, total
    return n, mx, my, cxy, m2x, m2y


def correlation(c: CoMoments) -> float:
    n, _mx, _my, cxy, m2x, m2y = c
    if n < 2 or m2x <= 0 or m2y <= 0:
        return 0.0  # undefined (constant or too few pairs): pandas gives NaN, which selects as no correlation
    return float(cxy / np.sqrt(m2x * m2y))


def combine_counts(parts: list[pd.Series]) -> pd.Series:
    """Value counts of blocks (pandas `value_counts`) summed per value."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.Series(dtype="int64")
    return pd.concat(parts).groupby(level=0, dropna=False, sort=False).sum()


# exact order statistics


def _keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving uint64 keys of float64 values (no NaN)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def _value(key: int) -> float:
    unsigned = np.uint64(key)
    bits = unsigned ^ _SIGN if unsigned & _SIGN else ~unsigned
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def _numpy_positions(n: int, q: float) -> tuple[int, int, np.float64]:
    """numpy's linear-method neighbours and weight for quantile q (0..1) of n sorted values."""
    virtual = (n - 1) * np.float64(q)
    if virtual >= n - 1:
        return n - 1, n - 1, np.float64(0.0)  # numpy takes the last value
    previous = np.floor(virtual)
    return int(previous), int(previous) + 1, np.float64(virtual - previous)


def _lerp(a: float, b: float, t: np.float64) -> float:
    a, b = np.float64(a), np.float64(b)
    diff = b - a
    return float(b - diff * (1 - t) if t >= 0.5 else a + diff * t)


def quantiles(columns: list[str], wanted: dict[str, list[float]], run: Pass) -> dict[str, list[float]]:
    """Exact quantiles of each column's present values, as np.percentile(values, 100 * q) gives them; MEDIAN in
    `wanted` asks for np.median's value instead. Columns without values get NaN.

    One pass first gathers, from each block, the values around the block's own quantile positions: where blocks
    are alike (no block's values lie wholly above or below the others'), the wanted ranks fall where every block's
    window overlaps and are read off exactly. The columns this leaves open take the bucket passes."""
    found = _from_windows(columns, wanted, run, WINDOW_ROWS) if WINDOW_ROWS else {}
    rest = [c for c in columns if c not in found]
    found |= _bucketed(rest, wanted, run) if rest else {}
    return {c: found[c] for c in columns}


def _bucketed(columns: list[str], wanted: dict[str, list[float]], run: Pass) -> dict[str, list[float]]:
    counts = _combine_histograms(run(lambda frame: {c: _histogram(present(frame, c), 0, 0) for c in columns}))
    totals = {c: int(counts[c].sum()) for c in columns}
    ranks = {c: sorted({r for q in wanted[c] for r in _ranks(totals[c], q)}) for c in columns}
    # rank -> (prefix, level, values before the bucket, values in the bucket)
    where = {(c, r): _locate(counts[c], r, 0, 0, 0) for c in columns for r in ranks[c]}
    found: dict[tuple[str, int], float] = {}
    while len(found) < len(where):
        pending = {k: v for k, v in where.items() if k not in found}
        gather = {(c, p, lv) for (c, _r), (p, lv, _b, size) in pending.items() if size <= GATHER_LIMIT}
        refine = {(c, p, lv) for (c, _r), (p, lv, _b, size) in pending.items() if size > GATHER_LIMIT}
        for (c, r), (p, lv, _b, _size) in pending.items():
            if lv == 64 // _BUCKET_BITS - 1 and (c, p, lv) in refine:  # the last 16 bits: one key, one value
                found[(c, r)] = _value(p)
        refine = {t for t in refine if t[2] < 64 // _BUCKET_BITS - 1}
        if not gather and not refine:
            continue
        parts = run(partial(_bucket_pass, gather=gather, refine=refine))
        results: dict[tuple[str, int, int], list[np.ndarray]] = {}
        for part in parts:
            for target, value in part.items():
                results.setdefault(target, []).append(value)
        for (c, r), (p, lv, before, _size) in pending.items():
            if (c, p, lv) in gather:
                values = np.sort(np.concatenate(results[(c, p, lv)]))
                found[(c, r)] = float(values[r - before])
            elif (c, p, lv) in refine:
                sub = np.sum(results[(c, p, lv)], axis=0)
                where[(c, r)] = _locate(sub, r, before, (p << _BUCKET_BITS), lv + 1)
    out: dict[str, list[float]] = {}
    for c in columns:
        out[c] = [_quantile_from(totals[c], q, partial(_found_at, found, c)) for q in wanted[c]]
    return out


Window = tuple[int, np.ndarray]  # (position of the first value in the block's sorted values, the values, sorted)


def _from_windows(columns: list[str], wanted: dict[str, list[float]], run: Pass, half: int) -> dict[str, list[float]]:
    """The columns whose quantiles every block's windows decide (see `quantiles`)."""
    fractions = {c: [0.5 if q < 0 else q for q in wanted[c]] for c in columns}
    parts = run(lambda frame: {c: _windows(present(frame, c), fractions[c], half) for c in columns})
    out = {}
    for c in columns:
        blocks = [p[c] for p in parts if p[c][0]]  # (values, windows) of blocks with values
        total = sum(n for n, _w in blocks)
        found: dict[int, float] = {}
        for i, q in enumerate(wanted[c]):
            found |= _read_ranks([(n, w[i]) for n, w in blocks], _ranks(total, q))
        if all(r in found for q in wanted[c] for r in _ranks(total, q)):
            out[c] = [_quantile_from(total, q, found.__getitem__) for q in wanted[c]]
    return out


def _windows(values: np.ndarray, fractions: list[float], half: int) -> tuple[int, list[Window]]:
    """The block's count and, per fraction q, its sorted values within `half` positions of q * (n - 1)."""
    n = int(values.size)
    spans = [(max(0, int(q * (n - 1)) - half), min(n, int(q * (n - 1)) + half + 1)) for q in fractions]
    if n:
        values = np.partition(values, sorted({k for a, b in spans for k in (a, b - 1)}))
    return n, [(a, np.sort(values[a:b])) for a, b in spans]


def _read_ranks(blocks: list[tuple[int, Window]], ranks: list[int]) -> dict[int, float]:
    """The values at `ranks` (0-based, over all blocks) that the windows decide. Every value strictly between
    `low` (the highest window start) and `high` (the lowest window end) is in its block's window, and every
    block's values up to `low` are counted exactly (those before its window, those in it), so those values sit
    at known ranks."""
    if not blocks or not ranks:
        return {}
    low = max((w[0] if start else -np.inf for _n, (start, w) in blocks), default=-np.inf)
    high = min((w[-1] if start + w.size < n else np.inf for n, (start, w) in blocks), default=np.inf)
    if not low < high:
        return {}
    below = sum(start + int(np.searchsorted(w, low, side="right")) for _n, (start, w) in blocks)
    between = np.sort(np.concatenate([w[(w > low) & (w < high)] for _n, (_s, w) in blocks]))
    return {r: float(between[r - below]) for r in ranks if 0 <= r - below < between.size}


def _ranks(n: int, q: float) -> list[int]:
    if n == 0:
        return []
    if q < 0:  # median
        return [(n - 1) // 2] if n % 2 else [n // 2 - 1, n // 2]
    low, high, _t = _numpy_positions(n, q)
    return [low, high]


def _found_at(found: dict[tuple[str, int], float], column: str, rank: int) -> float:
    return found[(column, rank)]


def _quantile_from(n: int, q: float, at: Callable[[int], float]) -> float:
    if n == 0:
        return float("nan")
    if q < 0:
        middle = [at(r) for r in _ranks(n, q)]
        return float(np.mean(np.array(middle, dtype=np.float64)))  # np.median: mean of the middle one or two
    low, high, t = _numpy_positions(n, q)
    return _lerp(at(low), at(high), t)


def _histogram(values: np.ndarray, prefix: int, level: int) -> np.ndarray:
    """Counts of the values' keys that start with `prefix` (level * 16 bits), by their next 16 bits."""
    keys = _keys(values)
    shift = np.uint64(64 - _BUCKET_BITS * (level + 1))
    if level:
        keys = keys[(keys >> np.uint64(shift + _BUCKET_BITS)) == np.uint64(prefix)]
    buckets = (keys >> shift) & np.uint64((1 << _BUCKET_BITS) - 1)
    return np.bincount(buckets.astype(np.int64), minlength=1 << _BUCKET_BITS)


def _combine_histograms(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for part in parts:
        for column, counts in part.items():
            out[column] = out[column] + counts if column in out else counts
    return out


def _locate(counts: np.ndarray, rank: int, before: int, base: int, level: int) -> tuple[int, int, int, int]:
    """(prefix, level, values before the bucket, values in it) of the bucket holding `rank`."""
    cumulative = before + np.cumsum(counts)
    bucket = int(np.searchsorted(cumulative, rank, side="right"))
    start = int(cumulative[bucket - 1]) if bucket else before
    return base + bucket, level, start, int(counts[bucket])


def _bucket_pass(
    frame: pd.DataFrame, gather: set[tuple[str, int, int]], refine: set[tuple[str, int, int]]
) -> dict[tuple[str, int, int], np.ndarray]:
    out = {}
    for column, prefix, level in gather | refine:
        values = present(frame, column)
        if (column, prefix, level) in refine:
            out[(column, prefix, level)] = _histogram(values, prefix, level + 1)
            continue
        shift = np.uint64(64 - _BUCKET_BITS * (level + 1))
        out[(column, prefix, level)] = values[(_keys(values) >> shift) == np.uint64(prefix)]
    return out
