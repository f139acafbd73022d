"""The `aiplatform` command line: start/stop the platform, and use it through the REST API."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from app.cli.common import PasswordOpt, UrlOpt, UserOpt, api_call, console, fail
from app.cli.dataset import dataset_app
from app.client import credentials
from app.client.sdk import ApiError, Client
from app.core.config import Settings, get_settings
from app.services.identity.users import ADMIN_PASSWORD_FILE

app = typer.Typer(help="aiplatform: a self-hosted AI training platform on Ray.", no_args_is_help=True)


def _admin_password(settings: Settings) -> str | None:
    if settings.admin_password:
        return settings.admin_password
    path = settings.data_dir / ADMIN_PASSWORD_FILE
    return path.read_text().strip() if path.exists() else None


def _client(url: str | None, username: str | None, password: str | None) -> Client:
    """A logged-in client: from AIP_TOKEN (an API token), a saved `aiplatform login`, or a password
    (the local admin's is read from the data dir)."""
    settings = get_settings()
    base = url or settings.api_url
    if token := os.environ.get("AIP_TOKEN"):
        return Client(base, token=token)
    saved = credentials.load(base)
    if password is None and saved and username in (None, saved["username"]):
        try:
            client = Client(base).resume(saved["refresh_token"])
            credentials.save(base, username=saved["username"], refresh_token=client.refresh_token or "")
            return client
        except ApiError:
            credentials.forget(base)  # expired or revoked: fall back to a password
    username = username or settings.admin_username
    if password is None and username == settings.admin_username:
        password = _admin_password(settings)
    if password is None:
        raise typer.BadParameter("Run `aiplatform login` first, or give --password, or set AIP_TOKEN.")
    try:
        return Client(base).login(username, password)
    except ApiError as e:
        console.print(f"[red]Login failed:[/red] {e}")
        raise typer.Exit(1) from e


@app.command()
def login(
    url: UrlOpt = None,
    username: Annotated[str, typer.Option("--username", "-u", prompt=True)] = "",
    password: Annotated[
        str, typer.Option("--password", "-p", prompt=True, hide_input=True, envvar="AIP_PASSWORD")
    ] = "",
) -> None:
    """Log in and keep the login (a refresh token) for later commands."""
    base = url or get_settings().api_url
    try:
        client = Client(base).login(username, password)
    except ApiError as e:
        console.print(f"[red]Login failed:[/red] {e}")
        raise typer.Exit(1) from e
    credentials.save(base, username=username, refresh_token=client.refresh_token or "")
    console.print(f"Logged in to {base} as {username}.")


@app.command()
def logout(url: UrlOpt = None) -> None:
    """End the saved login (the server revokes it) and forget it."""
    base = url or get_settings().api_url
    saved = credentials.load(base)
    if not saved:
        console.print("Not logged in.")
        return
    try:
        Client(base).resume(saved["refresh_token"]).logout()
    except ApiError:
        pass  # already expired or revoked
    credentials.forget(base)
    console.print("Logged out.")


@app.command()
def up() -> None:
    """Start the platform (local Ray cluster, API, UI) or show the one already running."""
    from app import launcher as platform

    settings = get_settings()
    started_at = time.monotonic()
    with console.status("Starting Ray and the control plane (about a minute on a small machine)..."):
        result = platform.start(settings)
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
    from app import launcher as platform

    if platform.stop(get_settings()):
        console.print("[green]Platform stopped.[/green]")
    else:
        console.print("Nothing to stop: no platform started from this data dir.")


@app.command()
def status() -> None:
    """Say whether the platform is running."""
    from app import launcher as platform

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


job_app = typer.Typer(help="Training jobs: create, follow, stop, retry, delete.", no_args_is_help=True)
app.add_typer(job_app, name="job")


def _job_line(job: dict[str, Any]) -> str:
    return f"{job['id']:>5}  {job['status']:<10} p{job['priority']:<4} {job['name']}  {job['message'][:60]}"


@job_app.command("create")
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
    client = _client(url, username, password)
    if code is not None:
        spec |= {"template": "custom", "code_hash": api_call(lambda: client.upload_code(code))["code_hash"]}
    job = api_call(lambda: client.create_job(**spec))
    console.print(_job_line(job))


@job_app.command("list")
def job_list(
    status: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """List training jobs."""
    client = _client(url, username, password)
    for job in api_call(lambda: client.list_jobs(status)):
        console.print(_job_line(job), markup=False, highlight=False)


@job_app.command("show")
def job_show(job_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Show a job: state, transitions, last metrics."""
    client = _client(url, username, password)
    job = api_call(lambda: client.get_job(job_id))
    console.print(_job_line(job), markup=False, highlight=False)
    for t in job["transitions"]:
        console.print(f"  {t['created_at']}  {t['from_status'] or '-':>9} -> {t['to_status']:<9} {t['message']}")
    if job["metrics"]:
        console.print(f"  last metrics: {job['metrics'][-1]}")


@job_app.command("steps")
def job_steps(
    job_id: int,
    max_points: Annotated[int, typer.Option(help="Downsample to this many steps.")] = 20,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Print a job's logged training steps (loss, learning rate, throughput), downsampled."""
    client = _client(url, username, password)
    page = api_call(lambda: client.job_steps(job_id, max_points=max_points))
    console.print(f"{page['total_steps']} steps logged", markup=False, highlight=False)
    for p in page["points"]:
        values = "  ".join(f"{k} {v:.4g}" for k, v in p.items() if k not in ("step", "epoch", "time"))
        console.print(f"  step {p['step']:>8}  epoch {p['epoch']:>4}  {values}", markup=False, highlight=False)


@job_app.command("logs")
def job_logs(
    job_id: int,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream new lines until the job ends.")] = False,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Print a training job's logs (with -f, follow them live)."""
    client = _client(url, username, password)
    if not follow:
        console.print(api_call(lambda: client.job_logs(job_id)), markup=False, highlight=False)
        return
    try:
        for line in client.follow_job_logs(job_id):
            console.print(line, markup=False, highlight=False)
    except ApiError as e:
        raise fail(e) from e


def _job_action(action: str, job_id: int, url: str | None, username: str | None, password: str | None) -> None:
    client = _client(url, username, password)
    result = api_call(lambda: getattr(client, f"{action}_job")(job_id))
    console.print(_job_line(result) if result else f"Job {job_id} deleted.", markup=False, highlight=False)


@job_app.command("start")
def job_start(job_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Queue a CREATED job."""
    _job_action("start", job_id, url, username, password)


@job_app.command("stop")
def job_stop(job_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Stop a queued or running job (its resources are freed)."""
    _job_action("stop", job_id, url, username, password)


@job_app.command("retry")
def job_retry(job_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Queue a FAILED or STOPPED job again; it resumes from its last checkpoint."""
    _job_action("retry", job_id, url, username, password)


@job_app.command("delete")
def job_delete(job_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Delete an ended job with its metrics, logs and checkpoints."""
    _job_action("delete", job_id, url, username, password)


tune_app = typer.Typer(help="Tuning runs (Ray Tune: ASHA, Optuna): create, follow, stop.", no_args_is_help=True)
app.add_typer(tune_app, name="tune")


@tune_app.command("create")
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
    client = _client(url, username, password)
    run = api_call(lambda: client.create_tune(**spec, search=search))
    console.print(f"Tuning run {run['id']} {run['status']}: {run['name']}", markup=False, highlight=False)


@tune_app.command("list")
def tune_list(url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """List tuning runs."""
    client = _client(url, username, password)
    for run in api_call(client.list_tunes):
        console.print(f"{run['id']:>5}  {run['status']:<10} {run['name']}  {run['message'][:60]}", markup=False)


@tune_app.command("show")
def tune_show(run_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Show a tuning run and its trials."""
    client = _client(url, username, password)
    run = api_call(lambda: client.get_tune(run_id))
    console.print(f"{run['id']} {run['status']} {run['name']} best trial {run['best_trial_id']}", markup=False)
    for t in run["trials"]:
        console.print(
            f"  {t['id']:>4} {t['status']:<14} iters {t['iterations']:>3}  best {t['best_value']}  {t['config']}",
            markup=False,
            highlight=False,
        )


@tune_app.command("stop")
def tune_stop(run_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Stop a tuning run."""
    client = _client(url, username, password)
    run = api_call(lambda: client.stop_tune(run_id))
    console.print(f"Tuning run {run['id']} {run['status']}.")


@tune_app.command("logs")
def tune_logs(run_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Print a tuning run's logs."""
    client = _client(url, username, password)
    console.print(api_call(lambda: client.tune_logs(run_id)), markup=False, highlight=False)


user_app = typer.Typer(help="Manage users (admins).", no_args_is_help=True)
role_app = typer.Typer(help="Manage roles (admins).", no_args_is_help=True)
token_app = typer.Typer(help="Your personal API tokens (for scripts: AIP_TOKEN=...).", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(role_app, name="role")
app.add_typer(token_app, name="token")
app.add_typer(dataset_app, name="dataset")


@user_app.command("list")
def user_list(url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    for user in _client(url, username, password).list_users():
        state = "active" if user["is_active"] else "disabled"
        console.print(f"{user['id']:>5}  {user['username']:<20} {state:<9} {', '.join(user['roles'])}")


@user_app.command("create")
def user_create(
    new_username: str,
    role: Annotated[list[str], typer.Option("--role", "-r", help="Role name; repeat for several.")] = ["developer"],  # noqa: B006
    new_password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = "",
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    user = _client(url, username, password).create_user(new_username, new_password, role)
    console.print(f"Created user {user['id']} {user['username']} ({', '.join(user['roles'])}).")


def _set_user(user_id: int, url: str | None, username: str | None, password: str | None, **changes: Any) -> None:
    user = _client(url, username, password).update_user(user_id, **changes)
    console.print(f"User {user['id']} {user['username']}: {'active' if user['is_active'] else 'disabled'}.")


@user_app.command("disable")
def user_disable(user_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    _set_user(user_id, url, username, password, is_active=False)


@user_app.command("enable")
def user_enable(user_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    _set_user(user_id, url, username, password, is_active=True, unlock=True)


@user_app.command("reset-password")
def user_reset_password(
    user_id: int,
    new_password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = "",
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    _client(url, username, password).reset_password(user_id, new_password)
    console.print(f"Password of user {user_id} reset; their logins were ended.")


@role_app.command("list")
def role_list(url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    for role in _client(url, username, password).list_roles():
        kind = "built-in" if role["builtin"] else "custom"
        console.print(f"{role['id']:>4}  {role['name']:<16} {kind:<9} {', '.join(role['permissions'])}")


@role_app.command("create")
def role_create(
    name: str,
    permission: Annotated[list[str], typer.Option("--permission", "-p", help="Repeat for several.")],
    description: str = "",
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    role = _client(url, username, password).create_role(name, permission, description)
    console.print(f"Created role {role['id']} {role['name']}.")


@token_app.command("create")
def token_create(
    name: str,
    scope: Annotated[list[str], typer.Option("--scope", "-s", help="A permission; repeat for several.")],
    days: int = 90,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    token = _client(url, username, password).create_api_token(name, scope, days)
    console.print(f"Token {token['id']} ({', '.join(token['scopes'])}), shown only now:")
    console.print(token["token"], markup=False, highlight=False)


@token_app.command("list")
def token_list(url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    for token in _client(url, username, password).list_api_tokens():
        state = "revoked" if token["revoked_at"] else f"expires {token['expires_at'] or 'never'}"
        console.print(f"{token['id']:>4}  {token['name']:<20} aip_{token['prefix']}_…  {state}")


@token_app.command("revoke")
def token_revoke(token_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    _client(url, username, password).revoke_api_token(token_id)
    console.print(f"Token {token_id} revoked.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
