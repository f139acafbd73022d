"""`aiplatform login | logout`: keep a login (a refresh token) for the commands that follow."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import UrlOpt, base_url, console, login
from app.client import ApiError, Client, credentials

app = typer.Typer()


@app.command("login")
def login_command(
    url: UrlOpt = None,
    username: Annotated[str, typer.Option("--username", "-u", prompt=True)] = "",
    password: Annotated[
        str, typer.Option("--password", "-p", prompt=True, hide_input=True, envvar="AIP_PASSWORD")
    ] = "",
) -> None:
    """Log in and keep the login (a refresh token) for later commands."""
    base = base_url(url)
    client = login(base, username, password)
    credentials.save(base, username=username, refresh_token=client.refresh_token or "")
    console.print(f"Logged in to {base} as {username}.")


@app.command()
def logout(url: UrlOpt = None) -> None:
    """End the saved login (the server revokes it) and forget it."""
    base = base_url(url)
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
