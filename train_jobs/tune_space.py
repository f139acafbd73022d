"""A tuning run's search space in Ray Tune's terms (the contract, `app.contracts.search_space`, stays Ray-free)."""

from __future__ import annotations

from typing import Any

from ray import tune

from app.contracts.search_space import Param, SearchConfig


def _sampler(p: Param) -> Any:
    if p.type == "choice":
        return tune.choice(p.values)
    if p.type == "randint":
        return tune.randint(int(p.low or 0), int(p.high or 0))
    return (tune.loguniform if p.type == "loguniform" else tune.uniform)(p.low, p.high)


def ray_space(search: SearchConfig) -> dict[str, Any]:
    return {name: _sampler(p) for name, p in search.space.items()}


def pbt_mutations(search: SearchConfig) -> dict[str, Any]:
    """What PBT may change: choices shift to a neighbouring value, ranges are scaled or resampled."""
    space = ray_space(search)
    return {
        name: list(search.space[name].values or []) if search.space[name].type == "choice" else space[name]
        for name in search.hyperparam_mutations or []
    }
