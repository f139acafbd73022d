"""`aiplatform dataset ...` for data jobs: versions, feature configuration, quality checks and preprocessing
pipelines (each a Ray job, followed with a spinner until it ends), and their listings."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

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

# Commands of `aiplatform dataset` (the dataset module adds them to its group).
app = typer.Typer()

WaitOpt = Annotated[bool, typer.Option("--wait", help="Follow the Ray job until it ends, then print the result.")]
StatusOpt = Annotated[
    str | None, typer.Option("--status", help="Only QUEUED, RUNNING, SUCCEEDED or FAILED ones.", case_sensitive=False)
]
ListOpt = Annotated[list[str] | None, typer.Option(help="Repeat it or separate with commas.")]


def _names(values: list[str] | None) -> list[str]:
    return [name.strip() for value in values or [] for name in value.split(",") if name.strip()]


def _follow(what: str, fetch: Callable[[], dict[str, Any]], wait: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """Shows a spinner with the job's status until it ends."""
    with console.status(f"{what}: {fetch()['status']}") as spinner:
        return wait(on_update=lambda row: spinner.update(f"{what}: {row['status']}"))


@app.command("versions")
def versions(
    dataset_id: int,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """List a dataset's versions with their lineage."""
    client = connect(url, username, password)
    rows = api_call(lambda: client.list_dataset_versions(dataset_id, limit=limit, offset=offset))
    table = Table("id", "version", "file", "format", "rows", "columns", "from", "created")
    for v in rows:
        origin = f"run {v['pipeline']['run_id']} on id {v['parent_id']}" if v.get("pipeline") else "upload"
        table.add_row(
            str(v["id"]),
            f"v{v['version']}",
            v["file_name"],
            v["format"],
            str(v["num_rows"]),
            str(len(v["columns"])),
            origin,
            v["created_at"][:19],
        )
    console.print(table)
    print_total(rows, "versions")


@app.command("features")
def features(
    dataset_id: int,
    target: Annotated[str | None, typer.Option(help="The target column (never transformed).")] = None,
    numeric: ListOpt = None,
    categorical: ListOpt = None,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Set the dataset's feature configuration: what pipeline steps without `columns` work on."""
    client = connect(url, username, password)
    dataset = api_call(lambda: client.set_features(dataset_id, target, _names(numeric), _names(categorical)))
    config = dataset["feature_config"]
    console.print(
        f"Dataset {dataset_id} features: target {config.get('target')}, numeric {config.get('numeric')}, "
        f"categorical {config.get('categorical')}"
    )


@app.command("quality")
def quality(
    version_id: int,
    iqr_factor: Annotated[float, typer.Option(help="Outlier outside [Q1 - k*IQR, Q3 + k*IQR].")] = 1.5,
    z_threshold: Annotated[float, typer.Option(help="Outlier when |value - mean| / std exceeds this.")] = 3.0,
    key_column: Annotated[list[str] | None, typer.Option(help="A column whose values must be unique.")] = None,
    column_type: Annotated[
        list[str] | None, typer.Option(help="Declared type, COLUMN=int|float|bool|datetime|str.")
    ] = None,
    max_examples: Annotated[int, typer.Option(help="Example rows kept per check.")] = 5,
    wait: WaitOpt = False,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Check a version's quality (a Ray job): completeness, types, anomalies, duplicates and a score."""
    types = {}
    for item in column_type or []:
        column, sep, kind = item.partition("=")
        if not sep or not column or not kind:
            raise typer.BadParameter(f"{item!r}: write COLUMN=TYPE, e.g. age=int.", param_hint="--column-type")
        types[column] = kind
    client = connect(url, username, password)
    config = {
        "iqr_factor": iqr_factor,
        "z_threshold": z_threshold,
        "key_columns": _names(key_column),
        "column_types": types,
        "max_examples": max_examples,
    }
    try:
        report = client.start_quality_check(version_id, **config)
        console.print(f"Quality report {report['id']} of version {version_id}: {report['status']}")
        if not wait:
            console.print(f"Follow it with: aiplatform dataset reports {version_id}")
            return
        report = _follow(
            f"Quality check {report['id']}",
            lambda: client.get_quality_report(report["id"]),
            lambda **kw: client.wait_quality_report(report["id"], **kw),
        )
    except ApiError as e:
        raise fail(e) from e
    if report["status"] != "SUCCEEDED":
        console.print(f"[red]Quality check {report['id']} failed:[/red] {report['message']}")
        raise typer.Exit(1)
    print_report(report)


def print_report(report: dict[str, Any]) -> None:
    result = report["result"]
    console.print(f"[bold]Score {report['score']:.3f}[/bold] ({result['rows']} rows, {result['columns']} columns)")
    parts = Table("part", "score")
    for name, value in result["scores"].items():
        parts.add_row(name, f"{value:.3f}")
    console.print(parts)
    counts = Table("check", "count")
    counts.add_row("missing cells", str(result["completeness"]["missing_cells"]))
    counts.add_row("rows with missing cells", str(result["completeness"]["rows_with_missing"]))
    counts.add_row("invalid values", str(sum(t["invalid"] for t in result["type_consistency"].values())))
    counts.add_row("outlier rows", str(result["anomalies"]["outlier_rows"]))
    counts.add_row("duplicate rows", str(result["duplicates"]["duplicate_rows"]))
    for column, keys in result["duplicates"]["key_columns"].items():
        counts.add_row(f"rows sharing a {column}", str(keys["rows"]))
    console.print(counts)
    examples = Table("check", "row", "values")
    for check, found in (
        ("missing", result["completeness"]["examples"]),
        ("duplicate", result["duplicates"]["examples"]),
    ):
        for example in found:
            examples.add_row(check, str(example["row"]), json.dumps(example["values"]))
    for column, types in result["type_consistency"].items():
        for example in types["examples"]:
            examples.add_row(f"not {types['type']}: {column}", str(example["row"]), json.dumps(example["value"]))
    for column, found in result["anomalies"]["columns"].items():
        for example in found["examples"]:
            examples.add_row(f"outlier: {column}", str(example["row"]), json.dumps(example["value"]))
    if examples.row_count:
        console.print(examples)


@app.command("pipeline")
def pipeline(
    version_id: int,
    steps: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help='JSON list of steps, e.g. [{"op": "impute"}].')
    ],
    wait: WaitOpt = False,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Run a preprocessing pipeline on a version (a Ray job); it makes a new Parquet version."""
    try:
        parsed = json.loads(steps.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise typer.BadParameter(f"{steps} is not JSON: {e}", param_hint="--steps") from e
    if isinstance(parsed, dict) and "steps" in parsed:
        parsed = parsed["steps"]
    if not isinstance(parsed, list):
        raise typer.BadParameter(f"{steps} must hold a JSON list of steps.", param_hint="--steps")
    client = connect(url, username, password)
    try:
        run = client.start_pipeline(version_id, parsed)
        console.print(f"Pipeline run {run['id']} on version {version_id}: {run['status']}")
        if not wait:
            console.print(f"Follow it with: aiplatform dataset runs {version_id}")
            return
        run = _follow(
            f"Pipeline run {run['id']}",
            lambda: client.get_pipeline_run(run["id"]),
            lambda **kw: client.wait_pipeline_run(run["id"], **kw),
        )
        if run["status"] != "SUCCEEDED":
            console.print(f"[red]Pipeline run {run['id']} failed:[/red] {run['message']}")
            raise typer.Exit(1)
        made = client.get_dataset_version(run["output_version_id"])
        state = client.pipeline_state(made["id"])
    except ApiError as e:
        raise fail(e) from e
    console.print(f"[green]New version id {made['id']}[/green] (v{made['version']}, {made['num_rows']} rows)")
    print_state(state)


def print_state(state: dict[str, Any]) -> None:
    table = Table("step", "op", "fitted")
    for index, step in enumerate(state["steps"]):
        fitted = {k: v for k, v in step.items() if k != "op"}
        text = json.dumps(fitted)
        table.add_row(str(index), step["op"], text if len(text) <= 160 else text[:157] + "...")
    console.print(table)
    console.print(f"Columns: {', '.join(state['output_columns'])}")


@app.command("runs")
def runs(
    version_id: int,
    status: StatusOpt = None,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """List the pipeline runs on a version, newest first."""
    client = connect(url, username, password)
    found = api_call(lambda: client.list_pipeline_runs(version_id, status=_status(status), limit=limit, offset=offset))
    table = Table("id", "status", "steps", "output version id", "created", "message")
    for run in found:
        ops = ", ".join(step.get("op", "?") for step in run["steps"])
        output = str(run["output_version_id"] or "")
        table.add_row(str(run["id"]), run["status"], ops, output, run["created_at"][:19], run["message"][:80])
    console.print(table)
    print_total(found, "pipeline runs")


@app.command("reports")
def reports(
    version_id: int,
    status: StatusOpt = None,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    """List the quality reports of a version, newest first."""
    client = connect(url, username, password)
    found = api_call(
        lambda: client.list_quality_reports(version_id, status=_status(status), limit=limit, offset=offset)
    )
    table = Table("id", "status", "score", "created", "message")
    for report in found:
        score = "" if report["score"] is None else f"{report['score']:.3f}"
        table.add_row(str(report["id"]), report["status"], score, report["created_at"][:19], report["message"][:80])
    console.print(table)
    print_total(found, "quality reports")


def _status(status: str | None) -> str | None:
    return status.upper() if status else None
