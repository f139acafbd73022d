"""Users of every kind, created through the API, for authorization tests."""

from __future__ import annotations

from dataclasses import dataclass

from app.client import Client

PASSWORD = "Str0ng-passw0rd-for-tests"


@dataclass
class People:
    admin: Client
    viewer: Client
    owner: Client  # a developer who owns the resources under test
    other: Client  # another developer
    anonymous: Client
    ids: dict[str, int]


def make_people(admin: Client, suffix: str) -> People:
    ids: dict[str, int] = {"admin": admin.account()["id"]}
    clients: dict[str, Client] = {}
    for name, role in (("viewer", "viewer"), ("owner", "developer"), ("other", "developer")):
        username = f"{name}-{suffix}"
        ids[name] = admin.create_user(username, PASSWORD, [role])["id"]
        clients[name] = Client(admin.base_url).login(username, PASSWORD)
    return People(admin=admin, anonymous=Client(admin.base_url), ids=ids, **clients)
