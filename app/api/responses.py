"""The one error envelope, and the error statuses each operation declares in the OpenAPI document.

Every route's errors come from the same few sources, so they are derived from what the operation is made of rather
than listed on each decorator: a login (401) and a permission check (403) from its security, a resource named in
its path or a row's id in its query or body (404), parameters or a body (422), a body over its limit (413), a
change (409), and the database or Ray being unreachable (503) anywhere.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field
from starlette.routing import compile_path

from app.core.errors import ErrorCode


class ErrorBody(BaseModel):
    """What every error answers: a stable code, a message that says what to change, and optional details."""

    code: ErrorCode
    message: str
    details: dict[str, Any] | None = Field(default=None, description="Invalid input: `errors`, one per field.")


WHY = {
    401: "Not logged in, or the token expired or was revoked.",
    403: "The caller lacks the permission (or the API token its scope).",
    404: "The resource does not exist, or the caller cannot see it.",
    409: "The change conflicts with the resource's state (e.g. a name in use, a job already running).",
    413: "The body is larger than the route's limit; the message names the setting that sets it.",
    422: "Invalid input; the message and `details.errors` name each field.",
    429: "Too many attempts; the message says when to retry.",
    503: "The database, the object store or the Ray cluster is unavailable; retry later.",
}
MUTATING = {"post", "put", "patch", "delete"}
# Routes whose errors do not follow from their shape: login answers 401/403 without a token, and limits attempts.
EXTRA = {("post", "/api/v1/auth/login"): {401, 403, 429}, ("post", "/api/v1/auth/refresh"): {401}}
_ENVELOPE = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def _names_a_row(operation: dict[str, Any], schemas: dict[str, Any]) -> bool:
    """Whether the operation names a row by its id in its query or body (`dataset_version_id`, ...): a row the
    caller cannot see answers 404, as in a path."""
    names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
    for content in operation.get("requestBody", {}).get("content", {}).values():
        ref = content.get("schema", {}).get("$ref", "")
        names += list(schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}))
    return any(name.endswith("_id") for name in names)


def operation_errors(
    path: str, method: str, operation: dict[str, Any], schemas: dict[str, Any] | None = None
) -> set[int]:
    """The error statuses an operation can answer, from its security, parameters, body and method (`schemas`: the
    document's component schemas, which its body refers to)."""
    where = {p["in"] for p in operation.get("parameters", [])}
    statuses = {503} | EXTRA.get((method, path), set())
    if operation.get("security"):
        statuses |= {401, 403}
    if "path" in where or _names_a_row(operation, schemas or {}):
        statuses.add(404)
    if where or "requestBody" in operation or method in MUTATING:
        statuses.add(422)
    if method in MUTATING:
        statuses.add(409)
    if "requestBody" in operation:
        statuses.add(413)
    return statuses


def install(app: FastAPI) -> None:
    """Builds the app's OpenAPI document with every operation's errors declared in the one envelope."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.pop("HTTPValidationError", None)  # FastAPI's {"detail": ...}: this API answers the envelope
            schemas.pop("ValidationError", None)
            schemas.update(ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}").pop("$defs", {}))
            schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas["ErrorBody"].pop("$defs", None)
            for path, operations in document.get("paths", {}).items():
                for method, operation in operations.items():
                    responses = operation.setdefault("responses", {})
                    for status in sorted(operation_errors(path, method, operation, schemas)):
                        responses[str(status)] = {"description": WHY[status], "content": _ENVELOPE}
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the document lists for a concrete path (GET and DELETE of one path are separate routes, so
    Starlette's own Allow names only one route's)."""
    methods: set[str] = set()
    for template, operations in app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(path):
            methods |= {method.upper() for method in operations}
    return sorted(methods)
