"""The REST API's operations, one method each.

client = Client("http://127.0.0.1:8000").login("admin", "...")
dataset = client.create_dataset("iris")
client.upload_csv(dataset["id"], "iris.csv")
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from app.client.http import ApiError, Connection
from app.client.paging import Page, fetch
from app.client.uploads import upload_file
from app.contracts.status import DataJobStatus, DeploymentStatus, JobStatus

TERMINAL_JOB_STATES = tuple(status for status in JobStatus if status.is_terminal)
TERMINAL_DATA_JOB_STATES = (DataJobStatus.SUCCEEDED, DataJobStatus.FAILED)  # quality checks and pipeline runs


class Client(Connection):
    """The REST API's operations. Authenticates with a personal API token (`token=`), or logs in and refreshes
    its access token itself (`Connection`).

    List methods return a `Page` (a list with `.total`): every item when called without `limit`, else one page of
    `limit` items from `offset`; `sort` names a field, "-field" for descending (each route lists its fields)."""

    def _list(self, path: str, limit: int | None, offset: int, **params: Any) -> Page:
        return fetch(self._call, path, params, limit=limit, offset=offset)

    # account and administration
    def account(self) -> dict[str, Any]:
        return self._call("GET", "/account")

    def change_password(self, current: str, new: str) -> None:
        self._call("POST", "/account/password", json={"current_password": current, "new_password": new})

    def create_api_token(self, name: str, scopes: list[str], expires_days: int | None = 90) -> dict[str, Any]:
        return self._call("POST", "/account/token", json={"name": name, "scopes": scopes, "expires_days": expires_days})

    def list_api_tokens(self, *, limit: int | None = None, offset: int = 0, sort: str | None = None) -> Page:
        return self._list("/account/token", limit, offset, sort=sort)

    def revoke_api_token(self, token_id: int) -> None:
        self._call("DELETE", f"/account/token/{token_id}")

    def list_users(
        self,
        username: str | None = None,
        is_active: bool | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        sort: str | None = None,
    ) -> Page:
        return self._list("/system/user", limit, offset, username=username, is_active=is_active, sort=sort)

    def create_user(self, username: str, password: str, roles: list[str]) -> dict[str, Any]:
        return self._call("POST", "/system/user", json={"username": username, "password": password, "roles": roles})

    def update_user(self, user_id: int, **changes: Any) -> dict[str, Any]:
        return self._call("PATCH", f"/system/user/{user_id}", json=changes)

    def unlock_user(self, user_id: int) -> dict[str, Any]:
        return self._call("POST", f"/system/user/{user_id}/unlock")

    def reset_password(self, user_id: int, password: str) -> None:
        self._call("POST", f"/system/user/{user_id}/password", json={"password": password})

    def list_roles(self, *, limit: int | None = None, offset: int = 0, sort: str | None = None) -> Page:
        return self._list("/system/role", limit, offset, sort=sort)

    def create_role(
        self, name: str, permissions: list[str], description: str = "", limits: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body = {"name": name, "permissions": permissions, "description": description, "limits": limits}
        return self._call("POST", "/system/role", json=body)

    def update_role(self, role_id: int, **fields: Any) -> dict[str, Any]:
        """Changes a role: description, permissions, limits ({"max_gpus", "max_cpus", "max_jobs"})."""
        return self._call("PUT", f"/system/role/{role_id}", json=fields)

    def audit(self, *, limit: int | None = 100, offset: int = 0, **filters: Any) -> Page:
        """Newest first; filters: username, action, result, path_prefix, since, until, sort. One page of `limit`
        entries by default (the log grows with every request): `limit=None` reads all of them."""
        return self._list("/system/audit", limit, offset, **filters)

    def settings(self) -> list[dict[str, Any]]:
        return self._call("GET", "/system/config")

    def set_setting(self, key: str, value: Any) -> dict[str, Any]:
        return self._call("PUT", f"/system/config/{key}", json={"value": value})

    def share(self, kind: str, resource_id: int, username: str) -> None:
        self._call("POST", f"/{kind}/{resource_id}/share", json={"username": username})

    # datasets
    def create_dataset(self, name: str, description: str = "") -> dict[str, Any]:
        return self._call("POST", "/dataset", json={"name": name, "description": description})

    def upload_csv(self, dataset_id: int, path: str | Path) -> dict[str, Any]:
        path = Path(path)
        with path.open("rb") as f:
            return self._call("POST", f"/dataset/{dataset_id}/version", files={"file": (path.name, f, "text/csv")})

    def list_datasets(
        self, name: str | None = None, *, limit: int | None = None, offset: int = 0, sort: str | None = None
    ) -> Page:
        """Datasets (with their versions); `name`: whose name contains it."""
        return self._list("/dataset", limit, offset, name=name, sort=sort)

    def upload(self, dataset_id: int, path: str | Path, **options: Any) -> dict[str, Any]:
        """Resumable chunked upload of any supported file: straight to S3 with presigned URLs when the platform
        offers it (S3 storage), else through the API (options: app.client.uploads.upload_file, e.g. mode="api")."""
        return upload_file(self, dataset_id, path, **options)

    def get_dataset_version(self, version_id: int) -> dict[str, Any]:
        return self._call("GET", f"/dataset/version/{version_id}")

    def dataset_profile(self, version_id: int) -> dict[str, Any]:
        return self._call("GET", f"/dataset/version/{version_id}/profile")

    def delete_dataset_version(self, version_id: int) -> None:
        self._call("DELETE", f"/dataset/version/{version_id}")

    def delete_dataset(self, dataset_id: int) -> None:
        self._call("DELETE", f"/dataset/{dataset_id}")

    # data jobs: versions, feature configuration, quality checks, preprocessing pipelines
    def get_dataset(self, dataset_id: int) -> dict[str, Any]:
        return self._call("GET", f"/dataset/{dataset_id}")

    def list_dataset_versions(
        self, dataset_id: int, *, limit: int | None = None, offset: int = 0, sort: str | None = None
    ) -> Page:
        return self._list(f"/dataset/{dataset_id}/version", limit, offset, sort=sort)

    def set_features(
        self, dataset_id: int, target: str | None = None, numeric: Sequence[str] = (), categorical: Sequence[str] = ()
    ) -> dict[str, Any]:
        """The columns pipeline steps without `columns` use; returns the dataset."""
        body = {"target": target, "numeric": list(numeric), "categorical": list(categorical)}
        return self._call("PUT", f"/dataset/{dataset_id}/features", json=body)

    def start_quality_check(self, version_id: int, **config: Any) -> dict[str, Any]:
        """A quality check as a Ray job; config: iqr_factor, z_threshold, key_columns, column_types, max_examples."""
        return self._call("POST", f"/dataset/version/{version_id}/quality", json=config)

    def get_quality_report(self, report_id: int) -> dict[str, Any]:
        return self._call("GET", f"/dataset/quality/{report_id}")

    def list_quality_reports(
        self,
        version_id: int | None = None,
        *,
        dataset_id: int | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Page:
        """Reports of one version, or of every version of a dataset; newest first."""
        path = f"/dataset/version/{version_id}/quality" if version_id is not None else f"/dataset/{dataset_id}/quality"
        return self._list(path, limit, offset, status=status)

    def wait_quality_report(
        self, report_id: int, timeout_s: float = 600, on_update: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        return self._wait(
            lambda: self.get_quality_report(report_id),
            lambda r: r["status"] in TERMINAL_DATA_JOB_STATES,
            timeout_s,
            on_update,
        )

    def start_pipeline(self, version_id: int, steps: list[dict[str, Any]]) -> dict[str, Any]:
        """A preprocessing run as a Ray job; on success its `output_version_id` is the new version."""
        return self._call("POST", f"/dataset/version/{version_id}/pipeline", json={"steps": steps})

    def pipeline_state(self, version_id: int) -> dict[str, Any]:
        """The fitted state (JSON) of a version a pipeline made."""
        return self._call("GET", f"/dataset/version/{version_id}/state")

    def get_pipeline_run(self, run_id: int) -> dict[str, Any]:
        return self._call("GET", f"/dataset/pipeline/{run_id}")

    def list_pipeline_runs(
        self,
        version_id: int | None = None,
        *,
        dataset_id: int | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Page:
        """Runs on one version, or on any version of a dataset; newest first."""
        path = (
            f"/dataset/version/{version_id}/pipeline" if version_id is not None else f"/dataset/{dataset_id}/pipeline"
        )
        return self._list(path, limit, offset, status=status)

    def wait_pipeline_run(
        self, run_id: int, timeout_s: float = 1800, on_update: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        return self._wait(
            lambda: self.get_pipeline_run(run_id),
            lambda r: r["status"] in TERMINAL_DATA_JOB_STATES,
            timeout_s,
            on_update,
        )

    # training
    def create_job(self, **spec: Any) -> dict[str, Any]:
        return self._call("POST", "/training/job", json=spec)

    def get_job(self, job_id: int) -> dict[str, Any]:
        return self._call("GET", f"/training/job/{job_id}")

    def list_jobs(
        self,
        status: str | None = None,
        name: str | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        sort: str | None = None,
    ) -> Page:
        """Newest first; `name`: whose name contains it."""
        return self._list("/training/job", limit, offset, status=status, name=name, sort=sort)

    def job_logs(self, job_id: int) -> str:
        return self._call("GET", f"/training/job/{job_id}/logs")

    def follow_job_logs(self, job_id: int) -> Iterator[str]:
        """Yields the job's log lines as they are written (server-sent events), until the job ends."""
        with self._http.stream("GET", f"/training/job/{job_id}/logs/stream", timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(response.status_code, response.json())
            event = "message"
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    if event == "end":
                        return
                    yield line[6:] if line.startswith("data: ") else line[5:]
                elif not line:
                    event = "message"

    def job_metrics(self, job_id: int, **query: Any) -> dict[str, Any]:
        """Metric history; query: since, until (ISO times), offset, limit, max_points."""
        params = {k: v for k, v in query.items() if v is not None}
        return self._call("GET", f"/training/job/{job_id}/metrics", params=params)

    def job_steps(self, job_id: int, **query: Any) -> dict[str, Any]:
        """Batch-step history (loss, lr, samples_per_s); query: since, until (ISO times), offset, limit, max_points."""
        params = {k: v for k, v in query.items() if v is not None}
        return self._call("GET", f"/training/job/{job_id}/steps", params=params)

    def job_usage(self, job_id: int, **query: Any) -> list[dict[str, Any]]:
        """Resource samples of the job's workers; query: since (ISO time), limit."""
        params = {k: v for k, v in query.items() if v is not None}
        return self._call("GET", f"/training/job/{job_id}/usage", params=params)

    def upload_code(self, path: str | Path) -> dict[str, Any]:
        """Uploads training code (.py, or .zip with train.py); create a job with template="custom" and its hash."""
        path = Path(path)
        with path.open("rb") as f:
            return self._call("POST", "/training/code", files={"file": (path.name, f, "application/octet-stream")})

    def start_job(self, job_id: int) -> dict[str, Any]:
        return self._call("POST", f"/training/job/{job_id}/start")

    def stop_job(self, job_id: int) -> dict[str, Any]:
        return self._call("POST", f"/training/job/{job_id}/stop")

    def retry_job(self, job_id: int) -> dict[str, Any]:
        return self._call("POST", f"/training/job/{job_id}/retry")

    def delete_job(self, job_id: int) -> None:
        self._call("DELETE", f"/training/job/{job_id}")

    # tuning
    def create_tune(self, **spec: Any) -> dict[str, Any]:
        """A Ray Tune run: training fields plus `search` (space, metric, mode, num_samples, scheduler asha/fifo/pbt and
        its options, search_alg)."""
        return self._call("POST", "/training/tune", json=spec)

    def get_tune(self, run_id: int) -> dict[str, Any]:
        return self._call("GET", f"/training/tune/{run_id}")

    def list_tunes(
        self, status: str | None = None, *, limit: int | None = None, offset: int = 0, sort: str | None = None
    ) -> Page:
        return self._list("/training/tune", limit, offset, status=status, sort=sort)

    def stop_tune(self, run_id: int) -> dict[str, Any]:
        return self._call("POST", f"/training/tune/{run_id}/stop")

    def tune_logs(self, run_id: int) -> str:
        return self._call("GET", f"/training/tune/{run_id}/logs")

    def wait_tune(
        self, run_id: int, timeout_s: float = 1800, on_update: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        return self._wait(
            lambda: self.get_tune(run_id), lambda r: r["status"] in TERMINAL_JOB_STATES, timeout_s, on_update
        )

    def wait_job(
        self, job_id: int, timeout_s: float = 900, on_update: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        return self._wait(
            lambda: self.get_job(job_id), lambda j: j["status"] in TERMINAL_JOB_STATES, timeout_s, on_update
        )

    # models and deployments
    def list_models(
        self, name: str | None = None, *, limit: int | None = None, offset: int = 0, sort: str | None = None
    ) -> Page:
        return self._list("/model", limit, offset, name=name, sort=sort)

    def list_deployments(
        self, status: str | None = None, *, limit: int | None = None, offset: int = 0, sort: str | None = None
    ) -> Page:
        return self._list("/deployment", limit, offset, status=status, sort=sort)

    def get_model_version(self, version_id: int) -> dict[str, Any]:
        return self._call("GET", f"/model/version/{version_id}")

    def deploy(self, model_version_id: int, num_replicas: int = 1) -> dict[str, Any]:
        return self._call("POST", f"/model/{model_version_id}/deploy", json={"num_replicas": num_replicas})

    def get_deployment(self, deployment_id: int) -> dict[str, Any]:
        return self._call("GET", f"/deployment/{deployment_id}")

    def wait_deployment(self, deployment_id: int, timeout_s: float = 300) -> dict[str, Any]:
        settled = (DeploymentStatus.RUNNING, DeploymentStatus.FAILED)
        return self._wait(lambda: self.get_deployment(deployment_id), lambda d: d["status"] in settled, timeout_s)

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
