"""The SDK's connection to the REST API: bearer authentication, a login's refresh, and errors as ApiError.

`Client` (the endpoints) and the upload client both build on it, so neither imports the other for it.
"""

from __future__ import annotations

from typing import Any, Self

import httpx


class ApiError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.body = body


class Connection:
    """Authenticates with a personal API token (`token=`), or logs in and refreshes its access token itself."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 120) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=f"{self.base_url}/api/v1", timeout=timeout)
        self.refresh_token: str | None = None
        if token:
            self._bearer(token)

    def _bearer(self, token: str) -> None:
        self._http.headers["Authorization"] = f"Bearer {token}"

    def login(self, username: str, password: str) -> Self:
        self._use(self._call("POST", "/auth/login", data={"username": username, "password": password}))
        return self

    def resume(self, refresh_token: str) -> Self:
        """Continues a saved login (the refresh token rotates: read `refresh_token` afterwards to save it)."""
        self.refresh_token = refresh_token
        self.refresh()
        return self

    def refresh(self) -> None:
        if not self.refresh_token:
            raise ApiError(401, {"message": "No login to refresh: log in again."})
        self._use(self._call("POST", "/auth/refresh", json={"refresh_token": self.refresh_token}, _retry=False))

    def _use(self, login: dict[str, Any]) -> None:
        self.refresh_token = login["refresh_token"]
        self._bearer(login["access_token"])

    def logout(self) -> None:
        self._call("POST", "/auth/logout")
        self.refresh_token = None
        self._http.headers.pop("Authorization", None)

    def _call(self, method: str, path: str, _retry: bool = True, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code == 401 and _retry and self.refresh_token and "expired" in response.text:
            self.refresh()
            return self._call(method, path, _retry=False, **kwargs)
        body: Any = response.json() if "json" in response.headers.get("content-type", "") else response.text
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return body
