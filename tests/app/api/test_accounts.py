"""Logins, refresh and logout, API tokens, lockout, user and role administration, audit log, system settings and
secrets at rest — over HTTP against the running platform."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from app.client import ApiError, Client
from app.core.config import Settings
from tests.utils.people import PASSWORD


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def expect(status: int, call, *args, match: str = "", **kwargs) -> ApiError:  # noqa: ANN001
    with pytest.raises(ApiError) as err:
        call(*args, **kwargs)
    assert err.value.status == status, err.value.body
    assert match.lower() in str(err.value).lower(), err.value.body
    return err.value


@pytest.fixture
def developer(admin: Client) -> tuple[str, Client]:
    username = unique("dev")
    admin.create_user(username, PASSWORD, ["developer"])
    return username, Client(admin.base_url).login(username, PASSWORD)


def test_refresh_rotates_and_logout_revokes(developer: tuple[str, Client]) -> None:
    _, client = developer
    first_refresh = client.refresh_token
    client.refresh()
    assert client.refresh_token != first_refresh
    stale = Client(client.base_url)
    stale.refresh_token = first_refresh
    expect(401, stale.refresh, match="refresh token")  # a used refresh token is spent

    access = client._http.headers["Authorization"]
    client.logout()
    after = httpx.get(f"{client.base_url}/api/v1/account", headers={"Authorization": access})
    assert after.status_code == 401  # the access token died with its login, before it expired
    assert "ended" in after.json()["message"]


def test_api_tokens_are_scoped_revocable_and_shown_once(developer: tuple[str, Client]) -> None:
    _, client = developer
    created = client.create_api_token("ci", ["dataset:list", "dataset:query"], expires_days=1)
    assert created["token"].startswith("aip_")
    assert all("token" not in t for t in client.list_api_tokens())

    scoped = Client(client.base_url, token=created["token"])
    assert isinstance(scoped.list_datasets(), list)
    expect(403, scoped.create_dataset, unique("ds"), match="dataset:add")  # outside the token's scopes

    expect(422, client.create_api_token, "too-much", ["system:user:add"], match="do not hold")
    expect(422, client.create_api_token, "typo", ["dataset:lst"], match="Unknown permission")

    client.revoke_api_token(created["id"])
    expect(401, scoped.list_datasets, match="revoked")


def test_failed_logins_answer_alike_and_admin_unlock(admin: Client) -> None:
    username = unique("locky")
    user_id = admin.create_user(username, PASSWORD, ["viewer"])["id"]
    admin.set_setting("auth.max_failed_logins", 3)
    try:
        unknown = expect(401, Client(admin.base_url).login, unique("nobody"), "wrong-password-1")
        for _ in range(3):
            wrong = expect(401, Client(admin.base_url).login, username, "wrong-password-1")
        # This address now waits even with the right password, and is told nothing more than a wrong guess is.
        waiting = expect(401, Client(admin.base_url).login, username, PASSWORD)
        assert unknown.body == wrong.body == waiting.body
        assert "locked" not in str(waiting).lower() and username not in str(waiting)
        assert next(u for u in admin.list_users() if u["id"] == user_id)["locked_until"] is not None
        assert admin.unlock_user(user_id)["locked_until"] is None
        assert Client(admin.base_url).login(username, PASSWORD).account()["username"] == username
    finally:
        admin.set_setting("auth.max_failed_logins", 5)


def test_disable_and_password_reset_end_access(admin: Client, developer: tuple[str, Client]) -> None:
    username, client = developer
    user_id = client.account()["id"]
    admin.reset_password(user_id, "An0ther-good-passw0rd")
    expect(401, client.account, match="ended")
    client = Client(admin.base_url).login(username, "An0ther-good-passw0rd")
    admin.update_user(user_id, is_active=False)
    expect(401, client.account, match="disabled")
    expect(403, Client(admin.base_url).login, username, "An0ther-good-passw0rd", match="disabled")


def test_change_own_password(developer: tuple[str, Client]) -> None:
    username, client = developer
    expect(422, client.change_password, "not-the-password", "N3w-passw0rd-ok", match="current password")
    expect(422, client.change_password, PASSWORD, "short1", match="at least")
    client.change_password(PASSWORD, "N3w-passw0rd-ok")
    assert Client(client.base_url).login(username, "N3w-passw0rd-ok").account()["username"] == username


def test_bad_admin_inputs(admin: Client) -> None:
    name = unique("dup")
    admin.create_user(name, PASSWORD, ["viewer"])
    expect(409, admin.create_user, name, PASSWORD, ["viewer"], match="already exists")
    expect(422, admin.create_user, unique("weak"), "password", ["viewer"], match="weak password")
    expect(422, admin.create_user, "../etc", PASSWORD, ["viewer"], match="usernames")
    expect(422, admin.create_user, unique("norole"), PASSWORD, ["wizard"], match="Unknown role")
    expect(422, admin.create_role, unique("r"), ["dataset:fly"], match="Unknown permission")
    builtin = next(r for r in admin.list_roles() if r["name"] == "viewer")
    expect(409, admin._call, "PUT", f"/system/role/{builtin['id']}", json={"permissions": []}, match="built in")
    me = admin.account()["id"]
    expect(409, admin.update_user, me, is_active=False, match="your own")
    expect(404, admin.set_setting, "auth.no_such_key", 1, match="known")
    expect(422, admin.set_setting, "auth.max_failed_logins", "five", match="number")
    expect(422, admin.set_setting, "auth.max_failed_logins", 0, match="at least")


def test_custom_role_grants_exactly_its_permissions(admin: Client) -> None:
    role = unique("uploader")
    admin.create_role(role, ["dataset:list", "dataset:add", "account:self"])
    username = unique("up")
    admin.create_user(username, PASSWORD, [role])
    client = Client(admin.base_url).login(username, PASSWORD)
    assert set(client.account()["permissions"]) == {"dataset:list", "dataset:add", "account:self"}
    client.create_dataset(unique("ds"))
    expect(403, client.list_jobs, match="training:job:list")


def test_audit_log_records_changes_with_who_what_and_result(admin: Client, developer: tuple[str, Client]) -> None:
    username, client = developer
    name = unique("audited")
    dataset = client.create_dataset(name)
    expect(403, client.list_users)  # a read: not audited
    expect(403, client.create_user, unique("x"), PASSWORD, ["viewer"])  # a refused change: audited
    entries = admin.audit(username=username)
    created = next(e for e in entries if e["action"] == "dataset:add")
    assert created["result"] == "success" and created["status_code"] == 201
    assert created["method"] == "POST" and created["path"] == "/api/v1/dataset"
    assert created["client_ip"]
    refused = next(e for e in entries if e["action"] == "system:user:add")
    assert refused["result"] == "failure" and refused["status_code"] == 403
    assert all(e["result"] == "failure" for e in admin.audit(username=username, result="failure"))
    assert dataset["id"]
    logins = admin.audit(action="auth:login", username=username)
    assert logins and logins[0]["result"] == "success"
    expect(403, client.audit, match="system:audit:list")


def test_no_plaintext_secret_in_database_responses_or_logs(
    admin: Client, platform_settings: Settings, developer: tuple[str, Client]
) -> None:
    _, client = developer
    webhook_secret = f"planted-webhook-{uuid.uuid4().hex}"
    user_password = f"Planted-passw0rd-{uuid.uuid4().hex[:8]}"
    admin.set_setting("alerts.webhook_token", webhook_secret)
    admin.create_user(unique("planted"), user_password, ["viewer"])
    api_token = client.create_api_token("planted", ["dataset:list"])["token"]
    Client(admin.base_url, token=api_token).list_datasets()

    responses = " ".join(
        str(x) for x in (admin.settings(), admin.list_users(), admin.audit(limit=500), client.list_api_tokens())
    )
    serve_config = httpx.get(f"{platform_settings.dashboard_url}/api/serve/applications/").text
    planted = [webhook_secret, user_password, api_token, platform_settings.secret_key, platform_settings.encryption_key]
    for secret in planted[:3]:
        assert secret not in responses
    for secret in planted:
        assert secret not in serve_config  # runtime_env is readable through Ray's dashboard

    database = Path(platform_settings.database_url.removeprefix("sqlite:///"))
    stored = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    for secret in planted[:3]:
        assert secret.encode() not in stored
    logs = [
        *platform_settings.ray_temp_dir.glob("session_latest/logs/**/*"),
        *platform_settings.data_dir.glob("logs/*"),
    ]
    for path in (p for p in logs if p.is_file()):
        text = path.read_bytes()
        for secret in planted[:3]:
            assert secret.encode() not in text, f"{secret[:12]}... found in {path}"
    admin.set_setting("alerts.webhook_token", "")
