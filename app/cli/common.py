"""What every `aiplatform` command module shares: the console, the connection options, and how an API error ends
a command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from app.client.sdk import ApiError

console = Console()

UrlOpt = Annotated[str | None, typer.Option("--url", help="API URL (default: this machine's platform).")]
UserOpt = Annotated[str | None, typer.Option("--username", "-u", envvar="AIP_USERNAME")]
PasswordOpt = Annotated[str | None, typer.Option("--password", "-p", envvar="AIP_PASSWORD", hidden=True)]

T = TypeVar("T")


def fail(error: ApiError) -> typer.Exit:
    """Prints the API's error (it says what is wrong and how to fix it); raise the result to exit with status 1."""
    console.print(str(error), style="red", markup=False, highlight=False)
    return typer.Exit(1)


def api_call(call: Callable[[], T]) -> T:
    """`call()`, or the API's error printed and the command ended."""
    try:
        return call()
    except ApiError as e:
        raise fail(e) from e
