"""Many clients at once, API tokens and logins mixed, against the real API app served by uvicorn over a file
SQLite database: every request answers 2xx, no request writes its token's last use (the writer thread does,
once per token), and every state-changing request keeps its audit entry.

The app runs in this process (no Ray: these routes need none), so the test can watch the database engine.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import event

from app.api.main import create_app
from app.client import Client
from app.core.config import get_settings
from app.db.session import get_engine, session_scope, upgrade_schema
from app.services.identity import token_usage, users
from tests.utils.databases import reset_engines
from tests.utils.wait import wait_for

ADMIN_PASSWORD = "Load-admin-passw0rd-1"
DEV_PASSWORD = "Load-tester-passw0rd"
THREADS = 12
ROUNDS = 15
SCOPES = ["dataset:list", "dataset:query", "dataset:add", "training:job:list", "model:list", "deployment:list"]


@dataclass
class Server:
    url: str
    database_url: str


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("AIP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIP_ADMIN_PASSWORD", ADMIN_PASSWORD)
    get_settings.cache_clear()
    settings = get_settings()
    upgrade_schema(settings.database_url)
    with session_scope(settings.database_url) as session:
        users.ensure_admin(session, settings)
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="uvicorn", daemon=True)
    thread.start()
    wait_for(lambda: uv.started, timeout_s=30, interval_s=0.05, what="uvicorn to start")
    port = uv.servers[0].sockets[0].getsockname()[1]
    yield Server(url=f"http://127.0.0.1:{port}", database_url=settings.database_url)
    uv.should_exit = True
    thread.join(timeout=30)
    reset_engines(settings.database_url)
    get_settings.cache_clear()


@pytest.fixture
def token_update_threads(server: Server) -> Iterator[list[str]]:
    """The thread that ran each UPDATE of api_tokens, in order."""
    threads: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_TOKENS"):
            threads.append(threading.current_thread().name)

    engine = get_engine(server.database_url)
    event.listen(engine, "before_cursor_execute", seen)
    yield threads
    event.remove(engine, "before_cursor_execute", seen)


def test_many_clients_with_tokens_and_logins_never_wait_on_token_writes(
    server: Server, token_update_threads: list[str]
) -> None:
    admin = Client(server.url).login("admin", ADMIN_PASSWORD)
    admin.create_user("dev", DEV_PASSWORD, ["developer"])
    dev = Client(server.url).login("dev", DEV_PASSWORD)
    tokens = [owner.create_api_token(f"load-{i}", SCOPES)["token"] for i, owner in enumerate([admin, dev] * 2)]
    dataset_id = dev.create_dataset("shared")["id"]
    credentials = [("token", t) for t in tokens] + [("login", "admin"), ("login", "dev")]

    statuses: list[tuple[str, int]] = []
    created: list[int] = []
    lock = threading.Lock()

    def client_loop(n: int) -> None:
        kind, secret = credentials[n % len(credentials)]
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as http:
            if kind == "login":  # a JWT of its own, as a browser session would have
                password = ADMIN_PASSWORD if secret == "admin" else DEV_PASSWORD
                login = http.post("/auth/login", data={"username": secret, "password": password})
                secret = login.raise_for_status().json()["access_token"]
            http.headers["Authorization"] = f"Bearer {secret}"
            for i in range(ROUNDS):
                if i % 5 == 4:  # a write (audited) among the reads
                    r = http.post("/dataset", json={"name": f"c{n}-{i}"})
                    if r.status_code == 201:
                        with lock:
                            created.append(r.json()["id"])
                else:
                    path = ["/dataset", f"/dataset/{dataset_id}", "/training/job", "/model"][i % 4]
                    r = http.get(path)
                with lock:
                    statuses.append((f"{kind} {r.request.method} {r.request.url.path}", r.status_code))

    workers = [threading.Thread(target=client_loop, args=(n,)) for n in range(THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()

    failed = [(what, code) for what, code in statuses if not 200 <= code < 300]
    assert not failed, failed
    assert len(statuses) == THREADS * ROUNDS
    # Each token's use is written once, by the writer thread, never inside a request's transaction.
    wait_for(
        lambda: all(t["last_used_at"] for t in admin.list_api_tokens() + dev.list_api_tokens()),
        timeout_s=20,
        what="every token's last use recorded",
    )
    assert token_update_threads == [token_usage.WRITER_THREAD_NAME] * len(tokens)
    # Every audited write kept its entry (written in a transaction of its own, after the response).
    expected = len(created) + 1  # + the dataset made before the load
    audited = wait_for(
        lambda: len(admin.audit(action="dataset:add", result="success", limit=500)) >= expected,
        timeout_s=20,
        what="the audit entries of the writes",
    )
    assert audited and len(admin.audit(action="dataset:add", result="success", limit=500)) == expected
