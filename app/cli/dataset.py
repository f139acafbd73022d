"""`aiplatform dataset ...`: resumable uploads with a progress bar, listing, profiles, deletes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from app.cli import data_jobs
from app.cli.common import LimitOpt, OffsetOpt, PasswordOpt, UrlOpt, UserOpt, connect, console, print_total
from app.client import ApiError, Client
from app.client.uploads import DEFAULT_CHUNK_SIZE, DEFAULT_PARALLEL, file_sha256, upload_file

app = typer.Typer(
    help="Datasets: resumable uploads, versions, profiles, quality checks, pipelines.", no_args_is_help=True
)


def _dataset_id(client: Client, wanted: str | None, path: Path) -> int:
    """A dataset id from --dataset (an id or a name), else the file's stem; a missing name is created."""
    if wanted and wanted.isdigit():
        return int(wanted)
    name = wanted or re.sub(r"[^A-Za-z0-9_.\- ]", "-", path.stem).lstrip("-_. ") or "dataset"
    for dataset in client.list_datasets(name=name):  # names containing it; the exact one is wanted
        if dataset["name"] == name:
            return int(dataset["id"])
    return int(client.create_dataset(name)["id"])


@app.command("upload")
def upload(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Dataset id or name (default: file name).")
    ] = None,
    chunk_mb: Annotated[float, typer.Option("--chunk-mb", help="Chunk size in MiB.")] = DEFAULT_CHUNK_SIZE / 2**20,
    parallel: Annotated[int, typer.Option("--parallel", help="Chunks in flight at once.")] = DEFAULT_PARALLEL,
    mode: Annotated[
        str, typer.Option("--mode", help="auto: straight to S3 when the platform offers it; api; direct.")
    ] = "auto",
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Upload files as new dataset versions. Interrupted? Run the same command again: it resumes."""
    client = connect(url, username, password)
    chunk_size = max(1024, int(chunk_mb * 2**20))
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    for path in files:
        dataset_id = _dataset_id(client, dataset, path)
        with Progress(*columns, console=console) as progress:
            try:
                version = _upload_one(client, progress, dataset_id, path, chunk_size, parallel, mode)
            except KeyboardInterrupt:
                progress.stop()
                console.print(f"[yellow]Interrupted.[/yellow] Run the same command again to resume {path.name}.")
                raise typer.Exit(130) from None
            except ApiError as e:
                progress.stop()
                console.print(f"[red]{path.name}: {e}[/red]")
                raise typer.Exit(1) from e
        console.print(
            f"[green]{path.name}[/green] -> dataset {dataset_id} version {version['version']} "
            f"(id {version['id']}, {version['num_rows']} rows, sha256 {version['sha256'][:12]})"
        )


def _upload_one(
    client: Client, progress: Progress, dataset_id: int, path: Path, chunk_size: int, parallel: int, mode: str
) -> dict[str, Any]:
    size = path.stat().st_size
    hashing = progress.add_task(f"sha256 {path.name}", total=size)
    sha256 = file_sha256(path, lambda n: progress.advance(hashing, n))
    task = progress.add_task(f"upload {path.name}", total=size)

    def opened(session: dict[str, Any]) -> None:
        if session["content_known"]:  # the server has these bytes: nothing to send
            progress.update(task, completed=size, description=f"known  {path.name}")
        else:  # resuming: count what the server already has
            done = sum(_chunk_len(session, i) for i in session["received"])
            progress.update(task, completed=done, description=f"upload {path.name} ({session['mode']})")

    return upload_file(
        client,
        dataset_id,
        path,
        chunk_size=chunk_size,
        parallel=parallel,
        sha256=sha256,
        mode=mode,
        on_session=opened,
        on_chunk=lambda _index, n: progress.advance(task, n),
    )


def _chunk_len(session: dict[str, Any], index: int) -> int:
    if index == session["num_chunks"] - 1:
        return session["size_bytes"] - session["chunk_size"] * (session["num_chunks"] - 1)
    return session["chunk_size"]


@app.command("list")
def list_datasets(
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """List datasets and their versions."""
    found = connect(url, username, password).list_datasets(limit=limit, offset=offset)
    for dataset in found:
        console.print(f"{dataset['id']:>5}  {dataset['name']}")
        for v in dataset.get("versions", []):
            console.print(
                f"        v{v['version']} id={v['id']} {v['file_name']} {v['num_rows']} rows {v['sha256'][:12]}"
            )
    print_total(found, "datasets")


@app.command("profile")
def profile(version_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Print a version's profile (JSON)."""
    console.print_json(json.dumps(connect(url, username, password).dataset_profile(version_id)))


@app.command("delete")
def delete(
    dataset_id: int,
    version: Annotated[int | None, typer.Option("--version-id", help="Delete only this version.")] = None,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Delete a dataset (or one version) with every stored object only it referenced."""
    client = connect(url, username, password)
    if version is None:
        client.delete_dataset(dataset_id)
    else:
        client.delete_dataset_version(version)
    console.print("Deleted.")


# The data-job commands (versions, features, quality, pipeline, runs, reports) belong to the same group.
app.add_typer(data_jobs.app)
