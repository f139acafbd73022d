"""Request body limits per route, enforced while the body is read: a declared Content-Length over the limit is
refused before anything is read, and a streamed body (chunked, no length) when it passes the limit.

Most routes take small JSON; the few that take files or rows have limits of their own (`ROUTE_LIMITS`). Refusals
are the platform's error envelope with status 413, naming the setting that sets the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings, get_settings
from app.core.errors import AipError, too_large

MULTIPART_MARGIN = 64 << 10  # a form's boundaries and part headers around the file it carries


@dataclass(frozen=True)
class RouteLimit:
    setting: str  # a Settings field
    hint: str
    multipart: bool = False

    def limit(self, settings: Settings) -> int:
        value: int = getattr(settings, self.setting)
        return value + (MULTIPART_MARGIN if self.multipart else 0)


DEFAULT_LIMIT = RouteLimit("max_json_body_bytes", "send less per request")
# (method, path template under the API prefix) -> its limit; every other request gets DEFAULT_LIMIT.
ROUTE_LIMITS = {
    ("POST", "/training/code"): RouteLimit(
        "code_max_upload_bytes", "ship data as a dataset, not inside the code", multipart=True
    ),
    ("POST", "/dataset/{dataset_id}/version"): RouteLimit(
        "max_upload_bytes", "upload large files in chunks through an upload session", multipart=True
    ),
    ("PUT", "/dataset/{dataset_id}/upload/{upload_id}/chunk/{index}"): RouteLimit(
        "upload_max_chunk_bytes", "open the upload session with a smaller chunk_size"
    ),
    ("POST", "/deployment/{deployment_id}/predict"): RouteLimit(
        "max_predict_body_bytes", "send the rows in several requests"
    ),
}


class BodyTooLarge(HTTPException):
    """Raised while the body is read. An HTTPException, so FastAPI's body parsing lets it through unchanged (it
    turns other errors into a 400); the app's handler answers it with `error`'s envelope."""

    def __init__(self, error: AipError) -> None:
        super().__init__(status_code=413, detail=error.message)
        self.error = error


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.routes = [
            (method, compile_path(prefix + path)[0], limit) for (method, path), limit in ROUTE_LIMITS.items()
        ]

    def route_limit(self, method: str, path: str) -> RouteLimit:
        for route_method, pattern, limit in self.routes:
            if method == route_method and pattern.match(path):
                return limit
        return DEFAULT_LIMIT

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self.route_limit(scope["method"], scope["path"])
        limit = route.limit(get_settings())
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            # Refused unread: the error envelope, as the app's handler would write it.
            error = _error(scope, route, limit, f"declares {declared} bytes")
            await JSONResponse(error.to_dict(), status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(_error(scope, route, limit, f"has more than {limit} bytes"))
            return message

        await self.app(scope, limited, send)


def _error(scope: Scope, route: RouteLimit, limit: int, what: str) -> AipError:
    variable = f"AIP_{route.setting.upper()}"
    return too_large(
        f"The request body {what}; {scope['method']} {scope['path']} accepts at most {limit} ({variable}"
        f"{' plus room for the form' if route.multipart else ''}): {route.hint}.",
        setting=variable,
        limit=limit,
    )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if re.fullmatch(rb"\d{1,19}", value) else None
    return None
