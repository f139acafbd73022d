"""`aiplatform up | stop | status | demo`: the platform on this machine, and a demo through its API."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from app.cli.common import PasswordOpt, UrlOpt, UserOpt, connect, console
from app.client import Client, credentials
from app.core.config import get_settings

app = typer.Typer()


@app.command()
def up() -> None:
    """Start the platform (local Ray cluster, API, UI) or show the one already running."""
    from app import launcher  # imported here: it loads Ray and the services, which the other commands do without

    settings = get_settings()
    started_at = time.monotonic()
    with console.status("Starting Ray and the control plane (about a minute on a small machine)..."):
        result = launcher.start(settings)
    running = result.platform
    if result.started:
        console.print(f"[green]Platform started[/green] in {time.monotonic() - started_at:.0f} s.")
    else:
        console.print("[yellow]The platform is already running[/yellow]; nothing was started.")
    console.print(f"  API:        {running.api_url}")
    console.print(f"  API docs:   {running.api_url}/docs")
    console.print(f"  Ray:        {running.dashboard_url}")
    console.print(f"  Data dir:   {settings.data_dir}")
    if result.admin_password:
        # Shown this once; this machine's CLI is logged in as the admin so `aiplatform demo` just works.
        client = Client(running.api_url).login(settings.admin_username, result.admin_password)
        credentials.save(running.api_url, username=settings.admin_username, refresh_token=client.refresh_token or "")
        console.print(f"  Admin:      {settings.admin_username} / {result.admin_password}")
        console.print(
            "  [bold]Note the password now: it is shown only this once.[/bold] The CLI is logged in as admin."
        )
    else:
        source = "AIP_ADMIN_PASSWORD" if settings.admin_password else "shown at the first start"
        console.print(f"  Admin:      {settings.admin_username} (password: {source}; `aiplatform login` to log in)")


@app.command()
def stop() -> None:
    """Stop what `aiplatform up` started (by PID; other Ray clusters on this machine are left alone)."""
    from app import launcher  # lazily, as in `up`

    if launcher.stop(get_settings()):
        console.print("[green]Platform stopped.[/green]")
    else:
        console.print("Nothing to stop: no platform started from this data dir.")


@app.command()
def status() -> None:
    """Say whether the platform is running."""
    from app import launcher  # lazily, as in `up`

    running = launcher.find_running(get_settings())
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
    # scikit-learn only for the demo's bundled data set: imported here to keep the other commands fast
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    client = connect(url, username, password)
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

    submitted = time.monotonic()
    job = client.create_job(
        name="demo-breast-cancer",
        dataset_version_id=version["id"],
        target_column="diagnosis",
        epochs=epochs,
        num_workers=num_workers,
    )
    console.print(f"Training job {job['id']} submitted ({num_workers} DDP workers).")
    timings: dict[str, float] = {}
    job = _follow_job(client, job["id"], epochs, submitted, timings)
    timings["job total"] = time.monotonic() - submitted
    if job["status"] != "SUCCEEDED":
        console.print(f"[red]Job {job['id']} {job['status']}:[/red] {job['message']}")
        raise typer.Exit(1)

    deploy_started = time.monotonic()
    deployment = client.deploy(job["model_version_id"])
    with console.status(f"Deploying model version {job['model_version_id']}..."):
        deployment = client.wait_deployment(deployment["id"])
    if deployment["status"] != "RUNNING":
        console.print(f"[red]Deployment failed:[/red] {deployment['message']}")
        raise typer.Exit(1)
    rows = json.loads(held_out.drop(columns=["diagnosis"]).to_json(orient="records"))
    result = client.predict(deployment["id"], rows)
    timings["deploy -> first prediction"] = time.monotonic() - deploy_started
    correct = sum(p == t for p, t in zip(result["labels"], held_out["diagnosis"], strict=True))
    console.print(f"Deployment {deployment['id']} answered {len(rows)} held-out rows.")
    console.print(f"[bold green]Held-out accuracy through the endpoint: {correct / len(rows):.3f}[/bold green]")
    console.print("Wall times: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()))
    if not keep:
        client.delete_deployment(deployment["id"])


def _follow_job(
    client: Client, job_id: int, epochs: int, submitted: float, timings: dict[str, float]
) -> dict[str, Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} epochs"))
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("QUEUED", total=epochs)

        def show(job: dict[str, Any]) -> None:
            if job["metrics"] and "submit -> first metric" not in timings:
                timings["submit -> first metric"] = time.monotonic() - submitted
            last = job["metrics"][-1] if job["metrics"] else {}
            detail = f" loss {last['loss']:.3f} val_acc {last['val_accuracy']:.3f}" if last else ""
            progress.update(task, completed=len(job["metrics"]), description=f"{job['status']}{detail}")

        return client.wait_job(job_id, on_update=show)
