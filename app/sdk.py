"""A small Python client for the REST API.

client = Client("http://127.0.0.1:8000").login("admin", "...")
dataset = client.create_dataset("iris")
client.upload_csv(dataset["id"], "iris.csv")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

TERMINAL_JOB_STATES = ("SUCCEEDED", "FAILED", "STOPPED")


class ApiError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.body = body


class Client:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 120) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=f"{self.base_url}/api/v1", timeout=timeout)
        if token:
            self._http.headers["Authorization"] = f"Bearer {token}"

    def login(self, username: str, password: str) -> Client:
        token = self._call("POST", "/auth/login", data={"username": username, "password": password})["access_token"]
        self._http.headers["Authorization"] = f"Bearer {token}"
        return self

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        body: Any = response.json() if "json" in response.headers.get("content-type", "") else response.text
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return body

    # datasets
    def create_dataset(self, name: str, description: str = "") -> dict[str, Any]:
        return self._call("POST", "/dataset", json={"name": name, "description": description})

    def upload_csv(self, dataset_id: int, path: str | Path) -> dict[str, Any]:
        path = Path(path)
        with path.open("rb") as f:
            return self._call("POST", f"/dataset/{dataset_id}/version", files={"file": (path.name, f, "text/csv")})

    def list_datasets(self) -> list[dict[str, Any]]:
        return self._call("GET", "/dataset")

    # training
    def create_job(self, **spec: Any) -> dict[str, Any]:
        return self._call("POST", "/training/job", json=spec)

    def get_job(self, job_id: int) -> dict[str, Any]:
        return self._call("GET", f"/training/job/{job_id}")

    def list_jobs(self) -> list[dict[str, Any]]:
        return self._call("GET", "/training/job")

    def job_logs(self, job_id: int) -> str:
        return self._call("GET", f"/training/job/{job_id}/logs")

    def stop_job(self, job_id: int) -> dict[str, Any]:
        return self._call("POST", f"/training/job/{job_id}/stop")

    def wait_job(
        self, job_id: int, timeout_s: float = 900, on_update: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        return self._wait(
            lambda: self.get_job(job_id), lambda j: j["status"] in TERMINAL_JOB_STATES, timeout_s, on_update
        )

    # models and deployments
    def list_models(self) -> list[dict[str, Any]]:
        return self._call("GET", "/model")

    def get_model_version(self, version_id: int) -> dict[str, Any]:
        return self._call("GET", f"/model/version/{version_id}")

    def deploy(self, model_version_id: int, num_replicas: int = 1) -> dict[str, Any]:
        return self._call("POST", f"/model/{model_version_id}/deploy", json={"num_replicas": num_replicas})

    def get_deployment(self, deployment_id: int) -> dict[str, Any]:
        return self._call("GET", f"/deployment/{deployment_id}")

    def wait_deployment(self, deployment_id: int, timeout_s: float = 300) -> dict[str, Any]:
        return self._wait(
            lambda: self.get_deployment(deployment_id), lambda d: d["status"] in ("RUNNING", "FAILED"), timeout_s
        )

    def delete_deployment(self, deployment_id: int) -> None:
        self._call("DELETE", f"/deployment/{deployment_id}")

    def predict(self, deployment_id: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return self._call("POST", f"/deployment/{deployment_id}/predict", json={"rows": rows})

    @staticmethod
    def _wait(
        fetch: Callable[[], dict[str, Any]],
        done: Callable[[dict[str, Any]], bool],
        timeout_s: float,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            current = fetch()
            if on_update:
                on_update(current)
            if done(current):
                return current
            if time.monotonic() > deadline:
                raise TimeoutError(f"Still not done after {timeout_s:.0f} s: {current.get('status')}")
            time.sleep(1)
