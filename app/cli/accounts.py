"""`aiplatform user | role | token ...`: users and roles (admins), and one's own API tokens."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from app.cli.common import LimitOpt, OffsetOpt, PasswordOpt, UrlOpt, UserOpt, connect, console, print_total

user_app = typer.Typer(help="Manage users (admins).", no_args_is_help=True)
role_app = typer.Typer(help="Manage roles (admins).", no_args_is_help=True)
token_app = typer.Typer(help="Your personal API tokens (for scripts: AIP_TOKEN=...).", no_args_is_help=True)


@user_app.command("list")
def user_list(
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    found = connect(url, username, password).list_users(limit=limit, offset=offset)
    for user in found:
        state = "active" if user["is_active"] else "disabled"
        console.print(f"{user['id']:>5}  {user['username']:<20} {state:<9} {', '.join(user['roles'])}")
    print_total(found, "users")


@user_app.command("create")
def user_create(
    new_username: str,
    role: Annotated[list[str], typer.Option("--role", "-r", help="Role name; repeat for several.")] = ["developer"],  # noqa: B006
    new_password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = "",
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    user = connect(url, username, password).create_user(new_username, new_password, role)
    console.print(f"Created user {user['id']} {user['username']} ({', '.join(user['roles'])}).")


def _set_user(user_id: int, url: str | None, username: str | None, password: str | None, **changes: Any) -> None:
    user = connect(url, username, password).update_user(user_id, **changes)
    console.print(f"User {user['id']} {user['username']}: {'active' if user['is_active'] else 'disabled'}.")


@user_app.command("disable")
def user_disable(user_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    _set_user(user_id, url, username, password, is_active=False)


@user_app.command("enable")
def user_enable(user_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    _set_user(user_id, url, username, password, is_active=True, unlock=True)


@user_app.command("unlock")
def user_unlock(user_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    """Ends the waits that failed logins put on a user's logins (from every address)."""
    user = connect(url, username, password).unlock_user(user_id)
    console.print(f"User {user['id']} {user['username']} unlocked.")


@user_app.command("reset-password")
def user_reset_password(
    user_id: int,
    new_password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = "",
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    connect(url, username, password).reset_password(user_id, new_password)
    console.print(f"Password of user {user_id} reset; their logins were ended.")


@role_app.command("list")
def role_list(
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    found = connect(url, username, password).list_roles(limit=limit, offset=offset)
    for role in found:
        kind = "built-in" if role["builtin"] else "custom"
        console.print(f"{role['id']:>4}  {role['name']:<16} {kind:<9} {', '.join(role['permissions'])}")
    print_total(found, "roles")


@role_app.command("create")
def role_create(
    name: str,
    permission: Annotated[list[str], typer.Option("--permission", "-p", help="Repeat for several.")],
    description: str = "",
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    role = connect(url, username, password).create_role(name, permission, description)
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
    token = connect(url, username, password).create_api_token(name, scope, days)
    console.print(f"Token {token['id']} ({', '.join(token['scopes'])}), shown only now:")
    console.print(token["token"], markup=False, highlight=False)


@token_app.command("list")
def token_list(
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    url: UrlOpt = None,
    username: UserOpt = None,
    password: PasswordOpt = None,
) -> None:
    found = connect(url, username, password).list_api_tokens(limit=limit, offset=offset)
    for token in found:
        state = "revoked" if token["revoked_at"] else f"expires {token['expires_at'] or 'never'}"
        console.print(f"{token['id']:>4}  {token['name']:<20} aip_{token['prefix']}_…  {state}")
    print_total(found, "tokens")


@token_app.command("revoke")
def token_revoke(token_id: int, url: UrlOpt = None, username: UserOpt = None, password: PasswordOpt = None) -> None:
    connect(url, username, password).revoke_api_token(token_id)
    console.print(f"Token {token_id} revoked.")
