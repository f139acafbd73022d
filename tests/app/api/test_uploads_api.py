"""Chunked uploads over real HTTP on the shared platform (Ray Serve ingress): the SDK, the CLI killed halfway and
resumed, bad requests as 4xx, profiles, deletes, and storage holding exactly what the database references."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.client import ApiError, Client
from app.client.uploads import file_sha256, upload_file
from app.core.config import Settings
from app.db.session import session_scope
from app.services.data import blobs
from app.storage import open_store
from tests.conftest import ADMIN_PASSWORD
from tests.utils.wait import wait_for

pytestmark = pytest.mark.ray
CHUNK = 16 * 1024


def messy_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "a": rng.normal(10, 2, rows),
            "b": rng.integers(0, 50, rows),
            "c": rng.choice(["x", "y", "z"], rows),
        }
    )
    frame.loc[::7, "a"] = np.nan
    return frame


def declare(client: Client, dataset_id: int, path: Path, chunk_size: int = CHUNK) -> dict:
    """Declaring the same file again returns the open session: a read-only way to see its chunks."""
    body = {"file_name": path.name, "size_bytes": path.stat().st_size, "sha256": file_sha256(path)}
    return client._call("POST", f"/dataset/{dataset_id}/upload", json={**body, "chunk_size": chunk_size})


def assert_storage_matches_database(settings: Settings) -> None:
    store = open_store(settings)
    with session_scope(settings.database_url) as session:
        referenced = blobs.referenced_keys(session)
    stored = set(store.list(blobs.BLOB_PREFIX)) | set(store.list(blobs.STATE_PREFIX))
    assert stored == {k for k in referenced if k.startswith(("datasets/",))}
    assert list(store.list("uploads/")) == []  # no test leaves a session open


def test_sdk_upload_profile_dedup_delete(admin: Client, platform_settings: Settings, tmp_path: Path) -> None:
    frame = messy_frame(5000)
    path = tmp_path / "messy.csv"
    frame.to_csv(path, index=False)
    dataset = admin.create_dataset("upload-sdk")
    sent: list[int] = []
    version = admin.upload(dataset["id"], path, chunk_size=CHUNK, parallel=4, on_chunk=lambda i, _n: sent.append(i))
    assert len(sent) > 5 and sorted(sent) == list(range(len(sent)))
    assert version["sha256"] == file_sha256(path) and version["num_rows"] == len(frame)

    profile = admin.dataset_profile(version["id"])
    by_name = {c["name"]: c for c in profile["column_profiles"]}
    assert (profile["rows"], profile["columns"]) == (5000, 3)
    assert by_name["a"]["missing"] == int(frame["a"].isna().sum())
    assert by_name["a"]["mean"] == pytest.approx(frame["a"].mean())
    assert by_name["a"]["std"] == pytest.approx(frame["a"].std())
    assert by_name["b"]["unique"] == frame["b"].nunique()
    assert sum(by_name["b"]["histogram"]["counts"]) == len(frame)
    assert {t["value"] for t in by_name["c"]["top_values"]} == {"x", "y", "z"}
    assert admin.dataset_profile(version["id"]) == profile  # stored, not recomputed differently

    # The same bytes again: the server already has them, no chunk is sent, the blob is shared.
    again: list[int] = []
    second = admin.upload(dataset["id"], path, chunk_size=CHUNK, on_chunk=lambda i, _n: again.append(i))
    assert again == [] and second["version"] == version["version"] + 1 and second["sha256"] == version["sha256"]

    admin.delete_dataset_version(version["id"])
    with pytest.raises(ApiError) as err:
        admin.get_dataset_version(version["id"])
    assert err.value.status == 404
    assert admin.dataset_profile(second["id"])["rows"] == 5000  # its blob survived the other's delete
    admin.delete_dataset(dataset["id"])
    assert_storage_matches_database(platform_settings)


def test_bad_requests_are_4xx_and_leave_nothing(admin: Client, platform_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    messy_frame(3000).to_csv(path, index=False)
    dataset = admin.create_dataset("upload-bad")
    session = declare(admin, dataset["id"], path)
    assert session["mode"] == "api"  # local storage: chunks go through the API
    base = f"/dataset/{dataset['id']}/upload/{session['id']}"
    chunk = path.read_bytes()[:CHUNK]
    good = {"X-Chunk-Sha256": hashlib.sha256(chunk).hexdigest()}
    short = {"X-Chunk-Sha256": hashlib.sha256(chunk[:-1]).hexdigest()}
    unknown = f"/dataset/{dataset['id']}/upload/{'0' * 32}"
    http = admin._http
    cases = {
        "wrong checksum": (http.put(f"{base}/chunk/0", content=chunk, headers={"X-Chunk-Sha256": "0" * 64}), 422),
        "no checksum": (http.put(f"{base}/chunk/0", content=chunk), 422),
        "index out of range": (http.put(f"{base}/chunk/9999", content=chunk, headers=good), 422),
        "short chunk": (
            http.put(f"{base}/chunk/0", content=chunk[:-1], headers=short),
            422,
        ),
        "incomplete": (http.post(f"{base}/complete"), 422),
        "unknown session": (http.put(f"{unknown}/chunk/0", content=chunk, headers=good), 404),
        "path trick": (
            http.post(f"/dataset/{dataset['id']}/upload", json={"file_name": "../x.csv", "size_bytes": 10,
                                                                 "sha256": "0" * 64, "chunk_size": 4096}),
            422,
        ),
        "direct on local storage": (
            http.post(f"/dataset/{dataset['id']}/upload", json={"file_name": "x.csv", "size_bytes": 10,
                                                                 "sha256": "0" * 64, "chunk_size": 4096,
                                                                 "mode": "direct"}),
            422,
        ),
        "part url of an api session": (
            http.post(f"{base}/chunk/0/url", json={"sha256": hashlib.sha256(chunk).hexdigest()}),
            422,
        ),
        "unknown field": (
            http.post(f"/dataset/{dataset['id']}/upload", json={"file_name": "x.csv", "size_bytes": 10,
                                                                 "sha256": "0" * 64, "chunk_size": 4096, "x": 1}),
            422,
        ),
    }  # fmt: skip
    for case, (response, status) in cases.items():
        assert response.status_code == status, (case, response.text)
        assert response.json()["message"], case
    assert "checksum" in cases["wrong checksum"][0].json()["message"]
    assert "out of range" in cases["index out of range"][0].json()["message"]
    assert "S3 storage" in cases["direct on local storage"][0].json()["message"]
    assert "through the API" in cases["part url of an api session"][0].json()["message"]
    assert admin._call("GET", base)["received"] == []

    assert http.delete(base).status_code == 204
    assert http.put(f"{base}/chunk/0", content=chunk, headers=good).status_code == 409
    assert admin._call("GET", f"/dataset/{dataset['id']}")["versions"] == []
    admin.delete_dataset(dataset["id"])
    assert_storage_matches_database(platform_settings)


def _cli(path: Path, dataset: str, api_url: str, tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "AIP_DATA_DIR": str(tmp_path / "cli-data"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    args = [sys.executable, "-m", "app.cli.main", "dataset", "upload", str(path), "--dataset", dataset]
    args += ["--chunk-mb", str(CHUNK / 2**20), "--parallel", "1", "--url", api_url, "-u", "admin", "-p", ADMIN_PASSWORD]
    # Ctrl-C must reach the CLI even where the suite itself runs with SIGINT ignored (as a background job of a
    # non-interactive shell does, and its children inherit).
    return subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_cli_killed_halfway_resumes_with_only_missing_chunks(
    admin: Client,
    platform_settings: Settings,
    running_platform,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    path = tmp_path / "big.csv"
    messy_frame(120_000, seed=3).to_csv(path, index=False)  # ~4 MB: ~250 chunks of 16 KiB
    dataset = admin.create_dataset("upload-cli")
    total = -(-path.stat().st_size // CHUNK)

    proc = _cli(path, "upload-cli", running_platform.api_url, tmp_path)
    try:
        wait_for(lambda: len(declare(admin, dataset["id"], path)["received"]) >= 5, timeout_s=120, interval_s=0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    have = set(declare(admin, dataset["id"], path)["received"])
    assert 5 <= len(have) < total

    sent: list[int] = []
    version = upload_file(admin, dataset["id"], path, chunk_size=CHUNK, on_chunk=lambda i, _n: sent.append(i))
    assert sorted(sent) == sorted(set(range(total)) - have)  # only the missing chunks went again
    assert version["sha256"] == file_sha256(path)
    assert open_store(platform_settings).get_bytes(blobs.blob_key(version["sha256"])) == path.read_bytes()

    # Ctrl-C, then the same command again: it resumes and finishes.
    other = tmp_path / "other.csv"
    messy_frame(120_000, seed=4).to_csv(other, index=False)
    proc = _cli(other, "upload-cli", running_platform.api_url, tmp_path)
    try:
        wait_for(lambda: len(declare(admin, dataset["id"], other)["received"]) >= 3, timeout_s=120, interval_s=0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "run the same command again" in output.lower()
    rerun = _cli(other, "upload-cli", running_platform.api_url, tmp_path)
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output
    versions = admin._call("GET", f"/dataset/{dataset['id']}")["versions"]
    assert [v["sha256"] for v in versions] == [file_sha256(path), file_sha256(other)]
    admin.delete_dataset(dataset["id"])
    assert_storage_matches_database(platform_settings)
