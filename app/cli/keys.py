"""`aiplatform keys rotate`: new token-signing and encryption keys for the platform on this machine."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import console
from app.core.config import get_settings
from app.core.errors import AipError

app = typer.Typer(help="The platform's keys (run where its data dir is, with the platform stopped).")


@app.command()
def rotate(yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False) -> None:
    """Replace the token-signing and encryption keys and re-encrypt stored secrets.

    Access tokens signed with the old key stop working: clients log in again or refresh (`aiplatform login` does).
    API tokens and logins stay valid. Stop the platform first (`aiplatform stop`) and start it after.
    """
    from app.services.system import keys  # imported here: it loads the database layer

    settings = get_settings()
    if not yes:
        typer.confirm(f"Rotate the keys in {settings.data_dir}? Every current access token stops working.", abort=True)
    try:
        rotated = keys.rotate(settings)
    except AipError as e:
        console.print(e.message, style="red", markup=False, highlight=False)
        raise typer.Exit(1) from e
    console.print(
        f"New keys written to {', '.join(str(p) for p in rotated.key_files)}; "
        f"{rotated.secrets_reencrypted} stored secret(s) re-encrypted. Start the platform: `aiplatform up`."
    )
