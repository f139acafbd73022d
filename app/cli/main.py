"""The `aiplatform` command line: start/stop the platform, and use it through the REST API.

Each command group lives in its own module; this one only assembles them.
"""

from __future__ import annotations

import typer

from app.cli import accounts, auth, dataset, jobs, keys, platform, tuning

app = typer.Typer(help="aiplatform: a self-hosted AI training platform on Ray.", no_args_is_help=True)
app.add_typer(auth.app)  # login, logout
app.add_typer(platform.app)  # up, stop, status, demo
app.add_typer(jobs.app, name="job")
app.add_typer(tuning.app, name="tune")
app.add_typer(accounts.user_app, name="user")
app.add_typer(accounts.role_app, name="role")
app.add_typer(accounts.token_app, name="token")
app.add_typer(dataset.app, name="dataset")
app.add_typer(keys.app, name="keys")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
