"""`aiplatform job ...`: training jobs: create, follow, stop, retry, delete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import (
    LimitOpt,
    OffsetOpt,
    PasswordOpt,
    UrlOpt,
    UserOpt,
    api_call,
    connect,
    console,
    fail,
    print_total,
)
from app.client import ApiError

app = typer.Typer(help="Training jobs: create, follow, stop, retry, delete.", no_args_is_help=True)


def _job_line(job: dict[str, Any]) -> str:
    return f"{job['id']:>5}  {job['status']:<10} p{job['priority']:<4} {job['name']}  {job['message'][:60]}"


@app.command("create")
def job_create(
    target: Annotated[str, typer.Option("--target", help="Target column.")],
    dataset_id: Annotated[int | None, typer.Option(help="Train on the dataset's newest version.")] = None,
    dataset_version_id: int | None = None,
    template: str = "tabular_mlp",
    task: str = "classification",
    epochs: int = 10,
    batch_size: int = 32,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    num_workers: int = 2,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    priority: int = 0,
    checkpoint_interval: int = 1,
    name: str | None = None,
    config: Annotated[
        Path | None, typer.Option(help="JSON file with more fields (lr_scheduler, early_stopping, metric, ...).")
    ] = None,
    start: Annotated[bool, typer.Option(help="Queue at once (else CREATED until `job start`).")] = True,
    code: Annotated[
        Path | None, typer.Option(help="Your training code (.py, or .zip with train.py): runs as template 'custom'.")
    ] = None,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Create a training job (queued for the scheduler unless --no-start)."""
    spec: dict[str, Any] = {
        "target_column": target,
        "template": template,
        "task": task,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": lr,
        "optimizer": optimizer,
        "weight_decay": weight_decay,
        "num_workers": num_workers,
        "cpus_per_worker": cpus_per_worker,
        "gpus_per_worker": gpus_per_worker,
        "priority": priority,
        "checkpoint_interval": checkpoint_interval,
        "start": start,
    }
    spec |= {
        k: v
        for k, v in {"dataset_id": dataset_id, "dataset_version_id": dataset_version_id, "name": name}.items()
        if v is not None
    }
    if config is not None:
        spec |= json.loads(config.read_text())
    client = connect(url, username, password)
    if code is not None:
        spec |= {"template": "custom", "code_hash": api_call(lambda: client.upload_code(code))["code_hash"]}
    job = api_call(lambda: client.create_job(**spec))
    console.print(_job_line(job))


@app.command("list")
def job_list(
    status: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """List training jobs, newest first."""
    client = connect(url, username, password)
    found = api_call(lambda: client.list_jobs(status, limit=limit, offset=offset))
    for job in found:
        console.print(_job_line(job), markup=False, highlight=False)
    print_total(found, "jobs")


@app.command("show")
def job_show(job_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Show a job: state, transitions, last metrics."""
    client = connect(url, username, password)
    job = api_call(lambda: client.get_job(job_id))
    console.print(_job_line(job), markup=False, highlight=False)
    for t in job["transitions"]:
        console.print(f"  {t['created_at']}  {t['from_status'] or '-':>9} -> {t['to_status']:<9} {t['message']}")
    if job["metrics"]:
        console.print(f"  last metrics: {job['metrics'][-1]}")


@app.command("steps")
def job_steps(
    job_id: int,
    max_points: Annotated[int, typer.Option(help="Downsample to this many steps.")] = 20,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Print a job's logged training steps (loss, learning rate, throughput), downsampled."""
    client = connect(url, username, password)
    page = api_call(lambda: client.job_steps(job_id, max_points=max_points))
    console.print(f"{page['total_steps']} steps logged", markup=False, highlight=False)
    for p in page["points"]:
        values = "  ".join(f"{k} {v:.4g}" for k, v in p.items() if k not in ("step", "epoch", "time"))
        console.print(f"  step {p['step']:>8}  epoch {p['epoch']:>4}  {values}", markup=False, highlight=False)


@app.command("logs")
def job_logs(
    job_id: int,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream new lines until the job ends.")] = False,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Print a training job's logs (with -f, follow them live)."""
    client = connect(url, username, password)
    if not follow:
        console.print(api_call(lambda: client.job_logs(job_id)), markup=False, highlight=False)
        return
    try:
        for line in client.follow_job_logs(job_id):
            console.print(line, markup=False, highlight=False)
    except ApiError as e:
        raise fail(e) from e


def _job_action(action: str, job_id: int, url: str | None, username: str | None, password: str | None) -> None:
    client = connect(url, username, password)
    result = api_call(lambda: getattr(client, f"{action}_job")(job_id))
    console.print(_job_line(result) if result else f"Job {job_id} deleted.", markup=False, highlight=False)


@app.command("start")
def job_start(job_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Queue a CREATED job."""
    _job_action("start", job_id, url, username, password)


@app.command("stop")
def job_stop(job_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Stop a queued or running job (its resources are freed)."""
    _job_action("stop", job_id, url, username, password)


@app.command("retry")
def job_retry(job_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Queue a FAILED or STOPPED job again; it resumes from its last checkpoint."""
    _job_action("retry", job_id, url, username, password)


@app.command("delete")
def job_delete(job_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Delete an ended job with its metrics, logs and checkpoints."""
    _job_action("delete", job_id, url, username, password)
