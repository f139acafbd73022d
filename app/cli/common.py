"""What every `aiplatform` command module shares: the console, the connection options, a logged-in client, and
how an API error ends a command."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from app.client import ApiError, Client, credentials
from app.client.paging import MAX_PAGE, Page
from app.core.config import Settings, get_settings

console = Console()

UrlOpt = Annotated[str | None, typer.Option("--url", help="API URL (default: this machine's platform).")]
UserOpt = Annotated[str | None, typer.Option("--username", "-u", envvar="AIP_USERNAME")]
PasswordOpt = Annotated[str | None, typer.Option("--password", "-p", envvar="AIP_PASSWORD", hidden=True)]
LimitOpt = Annotated[int, typer.Option("--limit", min=1, max=MAX_PAGE, help="Show at most this many.")]
OffsetOpt = Annotated[int, typer.Option("--offset", min=0, help="Skip this many first.")]


def print_total(page: Page, what: str) -> None:
    """Which part of how many the page shows, and how to see the rest."""
    shown = len(page)
    if not shown:
        console.print(f"No {what} from offset {page.offset}; {page.total} in total.")
        return
    more = page.total - page.offset - shown
    hint = f"; --offset {page.offset + shown} for the next {min(more, page.limit)}" if more > 0 else ""
    console.print(f"{page.offset + 1}-{page.offset + shown} of {page.total} {what}{hint}.")


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


def base_url(url: str | None) -> str:
    return url or get_settings().api_url


def login(base: str, username: str, password: str) -> Client:
    """A password login, or the failure printed and the command ended."""
    try:
        return Client(base).login(username, password)
    except ApiError as e:
        console.print(f"[red]Login failed:[/red] {e}")
        raise typer.Exit(1) from e


def connect(url: str | None, username: str | None, password: str | None) -> Client:
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
    return login(base, username, password)


def _admin_password(settings: Settings) -> str | None:
    if settings.admin_password:
        return settings.admin_password
    path = settings.admin_password_file
    return path.read_text().strip() if path.exists() else None
