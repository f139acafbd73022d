"""Bad input against the running platform: a clear 4xx in the error envelope, the API answering others while it
handles the bad request, and nothing written (no rows, no stored objects)."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.main import API_PREFIX, create_app
from app.client import ApiError, Client
from app.contracts.formats import CLIPPED, SHOWN_VALUE_CHARS
from app.core.config import Settings
from app.db.models import MAX_ID
from app.storage import open_store
from tests.conftest import ADMIN_PASSWORD
from tests.utils.wait import wait_for

BAD_IDS = [str(2**63), str(MAX_ID + 1), "0", "abc"]


@pytest.fixture(scope="module")
def http(admin: Client) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{admin.base_url}{API_PREFIX}", timeout=120) as client:
        login = client.post("/auth/login", data={"username": "admin", "password": ADMIN_PASSWORD}).json()
        client.headers["Authorization"] = f"Bearer {login['access_token']}"
        yield client


def id_routes() -> list[tuple[str, str]]:
    """(method, path) of every operation with an integer id in its path."""
    found = []
    for path, operations in create_app().openapi()["paths"].items():
        for method, operation in operations.items():
            params = operation.get("parameters", [])
            if any(p["in"] == "path" and p["schema"].get("type") == "integer" for p in params):
                found.append((method.upper(), path.removeprefix(API_PREFIX)))
    return found


def test_ids_outside_the_database_range_are_404_on_every_id_route(http: httpx.Client) -> None:
    routes = id_routes()
    assert len(routes) > 40
    for method, template in routes:
        for bad in BAD_IDS:
            path = template.replace("{upload_id}", "0" * 32).replace("{username}", "nobody")
            path = path.replace("{kind}", "dataset")
            for name in ("_id}", "{index}"):
                while name in path:
                    start = path.rindex("{", 0, path.index(name) + 1)
                    path = path[:start] + bad + path[path.index(name) + len(name) :]
            response = http.request(method, path, json={})
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["code"] == "NOT_FOUND" and "ids are whole numbers" in response.json()["message"]


def during(request: Callable[[], httpx.Response], while_running: Callable[[], Any]) -> tuple[httpx.Response, Any]:
    """Runs `request` in a thread and `while_running` once the request is under way; both results."""
    out: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: out.setdefault("response", request()))
    thread.start()
    try:
        return_value = while_running()
    finally:
        thread.join(timeout=300)
    return out["response"], return_value


def paused_body(head: bytes, tail: bytes, *, resume: threading.Event, started: threading.Event) -> Iterator[bytes]:
    """A streamed (chunked) body that sends `head`, then waits for `resume` before the rest."""
    yield head
    started.set()  # the generator is asked for more only once `head` went out
    assert resume.wait(120)
    step = 256 << 10
    for at in range(0, len(tail), step):
        yield tail[at : at + step]


def health_while_stalled(admin: Client, started: threading.Event, resume: threading.Event) -> httpx.Response:
    try:
        assert started.wait(120)
        return httpx.get(f"{admin.base_url}{API_PREFIX}/health", timeout=60)
    finally:
        resume.set()


def test_an_oversized_json_body_is_413_and_creates_nothing(http: httpx.Client, admin: Client) -> None:
    before = len(admin.list_datasets())
    response = http.post("/dataset", json={"name": "too-big", "description": "a" * (2 << 20)})
    assert response.status_code == 413
    assert response.json()["code"] == "TOO_LARGE" and "AIP_MAX_JSON_BODY_BYTES" in response.json()["message"]
    assert len(admin.list_datasets()) == before


def test_a_streamed_body_over_the_limit_is_413_and_health_answers_meanwhile(
    http: httpx.Client, admin: Client, platform_settings: Settings
) -> None:
    before = len(admin.list_datasets())
    started, resume = threading.Event(), threading.Event()
    head = b'{"name": "streamed", "description": "' + b"a" * (512 << 10)
    tail = b"a" * platform_settings.max_json_body_bytes + b'"}'
    body = paused_body(head, tail, resume=resume, started=started)
    response, health = during(
        lambda: http.post("/dataset", content=body, headers={"Content-Type": "application/json"}),
        lambda: health_while_stalled(admin, started, resume),
    )
    assert health.status_code == 200  # answered before the bad request's body had even been sent whole
    assert response.status_code == 413 and "AIP_MAX_JSON_BODY_BYTES" in response.json()["message"]
    assert len(admin.list_datasets()) == before


def code_bomb() -> bytes:
    """~1 MiB zip whose train.py unpacks to 1 GiB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("train.py", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(1024):
                member.write(block)
    return buffer.getvalue()


def test_a_code_zip_bomb_is_413_stores_nothing_and_health_answers_meanwhile(
    http: httpx.Client, admin: Client, platform_settings: Settings
) -> None:
    store = open_store(platform_settings)
    stored_before = sorted(store.list("code/"))
    bomb = code_bomb()
    boundary = "aip-test-boundary"
    form_head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bomb.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    started, resume = threading.Event(), threading.Event()
    body = paused_body(
        form_head + bomb[: len(bomb) // 2],
        bomb[len(bomb) // 2 :] + f"\r\n--{boundary}--\r\n".encode(),
        resume=resume,
        started=started,
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    response, health = during(
        lambda: http.post("/training/code", content=body, headers=headers),
        lambda: health_while_stalled(admin, started, resume),
    )
    assert health.status_code == 200
    assert response.status_code == 413, response.text
    assert "AIP_CODE_MAX_UNPACKED_BYTES" in response.json()["message"]
    assert sorted(store.list("code/")) == stored_before


def upload_refused(admin: Client, platform_settings: Settings, name: str, data: bytes, tmp_path: Path) -> ApiError:
    dataset = admin.create_dataset(f"bounded-{name}")
    store = open_store(platform_settings)
    objects_before = sorted(store.list("datasets/"))
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ApiError) as caught:
        admin.upload_csv(dataset["id"], path)
    assert admin.get_dataset(dataset["id"])["versions"] == []
    assert sorted(store.list("datasets/")) == objects_before
    return caught.value


def test_a_csv_that_is_not_utf8_is_422_naming_the_line(
    admin: Client, platform_settings: Settings, tmp_path: Path
) -> None:
    data = b"id,city\n1,Paris\n2," + "Zürich".encode("latin-1") + b"\n"
    error = upload_refused(admin, platform_settings, "latin1.csv", data, tmp_path)
    assert error.status == 422
    assert error.body["details"] == {"line": 3, "byte_offset": len(b"id,city\n1,Paris\n2,Z")}
    assert "line 3" in error.body["message"] and "UTF-8" in error.body["message"]


def test_an_image_zip_of_zeros_is_refused(admin: Client, platform_settings: Settings, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("cat/zeros.png", "w", force_zip64=True) as member:
            for _ in range(256):
                member.write(bytes(1 << 20))
    error = upload_refused(admin, platform_settings, "zeros.zip", buffer.getvalue(), tmp_path)
    assert error.status == 422 and "AIP_ARCHIVE_MAX_RATIO" in error.body["message"]


def test_a_huge_cell_is_clipped_in_the_profile(admin: Client, tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("n,text\n1," + "y" * (10 << 20) + "\n2,short\n")
    version = admin.upload_csv(admin.create_dataset("bounded-wide")["id"], path)
    profile = wait_for(lambda: admin.dataset_profile(version["id"]), what="the profile")
    text = next(c for c in profile["column_profiles"] if c["name"] == "text")
    assert [t["value"] for t in text["top_values"]] == ["y" * SHOWN_VALUE_CHARS + CLIPPED, "short"]
