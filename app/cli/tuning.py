"""`aiplatform tune ...`: tuning runs (Ray Tune: ASHA, PBT, Optuna): create, follow, stop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import LimitOpt, OffsetOpt, PasswordOpt, UrlOpt, UserOpt, api_call, connect, console, print_total

app = typer.Typer(help="Tuning runs (Ray Tune: ASHA, Optuna): create, follow, stop.", no_args_is_help=True)


@app.command("create")
def tune_create(
    target: Annotated[str, typer.Option("--target", help="Target column.")],
    space: Annotated[Path, typer.Option(help='JSON search space: {"learning_rate": {"type": "loguniform", ...}}.')],
    dataset_id: int | None = None,
    dataset_version_id: int | None = None,
    task: str = "classification",
    metric: str | None = None,
    mode: str | None = None,
    num_samples: int = 8,
    max_concurrent: int = 2,
    scheduler: Annotated[str | None, typer.Option(help="asha (default), fifo or pbt.")] = None,
    max_t: Annotated[int | None, typer.Option(help="ASHA: most epochs per trial (default: --epochs).")] = None,
    grace_period: Annotated[int | None, typer.Option(help="ASHA: epochs before a trial may stop (default 1).")] = None,
    reduction_factor: Annotated[float | None, typer.Option(help="ASHA: reduction factor (default 2).")] = None,
    perturbation_interval: Annotated[int | None, typer.Option(help="PBT: epochs between perturbations.")] = None,
    quantile_fraction: Annotated[float | None, typer.Option(help="PBT: fraction that copies the best.")] = None,
    search_alg: Annotated[str | None, typer.Option(help="optuna (default; random with PBT) or random.")] = None,
    epochs: int = 10,
    num_workers: int = 1,
    name: str | None = None,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Start a tuning run; the best trial becomes a model version."""
    search: dict[str, Any] = {
        "space": json.loads(space.read_text()),
        "num_samples": num_samples,
        "max_concurrent_trials": max_concurrent,
    }
    chosen = {
        "metric": metric,
        "mode": mode,
        "scheduler": scheduler,
        "max_t": max_t,
        "grace_period": grace_period,
        "reduction_factor": reduction_factor,
        "perturbation_interval": perturbation_interval,
        "quantile_fraction": quantile_fraction,
        "search_alg": search_alg,
    }
    search |= {k: v for k, v in chosen.items() if v is not None}  # the rest: the server's defaults for the scheduler
    spec: dict[str, Any] = {"target_column": target, "task": task, "epochs": epochs, "num_workers": num_workers}
    spec |= {
        k: v
        for k, v in {"dataset_id": dataset_id, "dataset_version_id": dataset_version_id, "name": name}.items()
        if v is not None
    }
    client = connect(url, username, password)
    run = api_call(lambda: client.create_tune(**spec, search=search))
    console.print(f"Tuning run {run['id']} {run['status']}: {run['name']}", markup=False, highlight=False)


@app.command("list")
def tune_list(
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """List tuning runs, newest first."""
    client = connect(url, username, password)
    found = api_call(lambda: client.list_tunes(limit=limit, offset=offset))
    for run in found:
        console.print(f"{run['id']:>5}  {run['status']:<10} {run['name']}  {run['message'][:60]}", markup=False)
    print_total(found, "tuning runs")


@app.command("show")
def tune_show(run_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Show a tuning run and its trials."""
    client = connect(url, username, password)
    run = api_call(lambda: client.get_tune(run_id))
    console.print(f"{run['id']} {run['status']} {run['name']} best trial {run['best_trial_id']}", markup=False)
    for t in run["trials"]:
        console.print(
            f"  {t['id']:>4} {t['status']:<14} iters {t['iterations']:>3}  best {t['best_value']}  {t['config']}",
            markup=False,
            highlight=False,
        )


@app.command("stop")
def tune_stop(run_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Stop a tuning run."""
    client = connect(url, username, password)
    run = api_call(lambda: client.stop_tune(run_id))
    console.print(f"Tuning run {run['id']} {run['status']}.")


@app.command("logs")
def tune_logs(run_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Print a tuning run's logs."""
    client = connect(url, username, password)
    console.print(api_call(lambda: client.tune_logs(run_id)), markup=False, highlight=False)
