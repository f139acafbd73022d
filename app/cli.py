"""The `aiplatform` command line: start/stop the platform, and use it through the REST API."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from app.core.config import Settings, get_settings
from app.sdk import ApiError, Client
from app.services.users import ADMIN_PASSWORD_FILE

app = typer.Typer(help="aiplatform: a self-hosted AI training platform on Ray.", no_args_is_help=True)
console = Console()

UrlOpt = Annotated[str | None, typer.Option("--url", help="API URL (default: this machine's platform).")]
UserOpt = Annotated[str | None, typer.Option("--username", "-u", envvar="AIP_USERNAME")]
PasswordOpt = Annotated[str | None, typer.Option("--password", "-p", envvar="AIP_PASSWORD", hidden=True)]


def _admin_password(settings: Settings) -> str | None:
    if settings.admin_password:
        return settings.admin_password
    path = settings.data_dir / ADMIN_PASSWORD_FILE
    return path.read_text().strip() if path.exists() else None


def _client(url: str | None, username: str | None, password: str | None) -> Client:
    settings = get_settings()
    username = username or settings.admin_username
    if password is None and username == settings.admin_username:
        password = _admin_password(settings)
    if password is None:
        raise typer.BadParameter("Give --password (or set AIP_PASSWORD).")
    try:
        return Client(url or settings.api_url).login(username, password)
    except ApiError as e:
        console.print(f"[red]Login failed:[/red] {e}")
        raise typer.Exit(1) from e


@app.command()
def up() -> None:
    """Start the platform (local Ray cluster, API, UI) or show the one already running."""
    from app.cluster import platform

    settings = get_settings()
    started_at = time.monotonic()
    with console.status("Starting Ray and the control plane (about a minute on a small machine)..."):
        running, started = platform.start(settings)
    if started:
        console.print(f"[green]Platform started[/green] in {time.monotonic() - started_at:.0f} s.")
    else:
        console.print("[yellow]The platform is already running[/yellow]; nothing was started.")
    password = _admin_password(settings) or "(set by AIP_ADMIN_PASSWORD)"
    console.print(f"  API:        {running.api_url}")
    console.print(f"  API docs:   {running.api_url}/docs")
    console.print(f"  Ray:        {running.dashboard_url}")
    console.print(f"  Admin:      {settings.admin_username} / {password}")
    console.print(f"  Data dir:   {settings.data_dir}")


@app.command()
def stop() -> None:
    """Stop what `aiplatform up` started (by PID; other Ray clusters on this machine are left alone)."""
    from app.cluster import platform

    if platform.stop(get_settings()):
        console.print("[green]Platform stopped.[/green]")
    else:
        console.print("Nothing to stop: no platform started from this data dir.")


@app.command()
def status() -> None:
    """Say whether the platform is running."""
    from app.cluster import platform

    running = platform.find_running(get_settings())
    if running is None:
        console.print("Not running. Start it with: aiplatform up")
        raise typer.Exit(1)
    console.print(f"Running: {running.api_url} (Ray head PID {running.head_pid})")


@app.command()
def demo(
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
    epochs: int = 20,
    num_workers: int = 2,
    keep: Annotated[bool, typer.Option(help="Leave the deployment running afterwards.")] = True,
) -> None:
    """Upload a bundled dataset, train with DDP, deploy, and measure held-out accuracy through the endpoint."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    client = _client(url, username, password)
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "diagnosis"})
    frame["diagnosis"] = frame["diagnosis"].map(dict(enumerate(data.target_names)))
    train, held_out = train_test_split(frame, test_size=0.2, random_state=42, stratify=frame["diagnosis"])

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "breast_cancer.csv"
        train.to_csv(csv, index=False)
        dataset = client.create_dataset(f"breast-cancer-{int(time.time())}", "scikit-learn's breast cancer set")
        version = client.upload_csv(dataset["id"], csv)
    console.print(f"Uploaded dataset {dataset['id']} version {version['version']}: {version['num_rows']} rows.")

    job = client.create_job(
        name="demo-breast-cancer",
        dataset_version_id=version["id"],
        target_column="diagnosis",
        epochs=epochs,
        num_workers=num_workers,
    )
    console.print(f"Training job {job['id']} submitted ({num_workers} DDP workers).")
    job = _follow_job(client, job["id"], epochs)
    if job["status"] != "SUCCEEDED":
        console.print(f"[red]Job {job['id']} {job['status']}:[/red] {job['message']}")
        raise typer.Exit(1)

    deployment = client.deploy(job["model_version_id"])
    with console.status(f"Deploying model version {job['model_version_id']}..."):
        deployment = client.wait_deployment(deployment["id"])
    if deployment["status"] != "RUNNING":
        console.print(f"[red]Deployment failed:[/red] {deployment['message']}")
        raise typer.Exit(1)
    rows = json.loads(held_out.drop(columns=["diagnosis"]).to_json(orient="records"))
    result = client.predict(deployment["id"], rows)
    correct = sum(p == t for p, t in zip(result["labels"], held_out["diagnosis"], strict=True))
    console.print(f"Deployment {deployment['id']} answered {len(rows)} held-out rows.")
    console.print(f"[bold green]Held-out accuracy through the endpoint: {correct / len(rows):.3f}[/bold green]")
    if not keep:
        client.delete_deployment(deployment["id"])


def _follow_job(client: Client, job_id: int, epochs: int) -> dict[str, Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} epochs"))
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("QUEUED", total=epochs)

        def show(job: dict[str, Any]) -> None:
            last = job["metrics"][-1] if job["metrics"] else {}
            detail = f" loss {last['loss']:.3f} val_acc {last['val_accuracy']:.3f}" if last else ""
            progress.update(task, completed=len(job["metrics"]), description=f"{job['status']}{detail}")

        return client.wait_job(job_id, on_update=show)


@app.command("jobs")
def list_jobs(url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """List training jobs."""
    for job in _client(url, username, password).list_jobs():
        console.print(f"{job['id']:>5}  {job['status']:<10} {job['name']}  {job['message'][:60]}")


@app.command("logs")
def job_logs(job_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Print a training job's logs."""
    console.print(_client(url, username, password).job_logs(job_id), markup=False, highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
