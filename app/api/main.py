"""The control-plane FastAPI app, built by a factory (each Serve replica builds its own)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api import responses
from app.api.audit import AuditMiddleware
from app.api.limits import BodyLimitMiddleware, BodyTooLarge
from app.api.routes import (
    account,
    auth,
    datasets,
    deployments,
    models,
    pipelines,
    quality,
    shares,
    system,
    training,
    uploads,
)
from app.api.routes.training import code_router
from app.api.routes.tuning import router as tuning_router
from app.core.errors import AipError, ErrorCode
from app.db.models import MAX_ID
from app.web import STATIC_DIR

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


def create_app() -> FastAPI:
    app = FastAPI(title="aiplatform", version="0.1.0", description="Self-hosted AI training platform on Ray.")
    api = APIRouter(prefix=API_PREFIX)
    for module in (auth, account, system, shares, datasets, uploads, quality, pipelines, training, models, deployments):
        api.include_router(module.router)
    api.include_router(tuning_router)
    api.include_router(code_router)

    @api.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(api)
    app.mount("/ui", StaticFiles(directory=STATIC_DIR), name="ui")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.add_middleware(BodyLimitMiddleware, prefix=API_PREFIX)
    app.add_middleware(AuditMiddleware)
    app.add_exception_handler(AipError, _aip_error)
    app.add_exception_handler(BodyTooLarge, _body_too_large)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    responses.install(app)
    app.add_exception_handler(Exception, _unexpected_error)
    return app


async def _aip_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AipError)
    request.state.audit_message = exc.message
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)


async def _body_too_large(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyTooLarge)
    return await _aip_error(request, exc.error)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    in_path = [err for err in exc.errors() if err["loc"][0] == "path"]
    if in_path:
        # An id outside the database's range (or not a number) names nothing that exists: 404, not 422 or 500.
        name = in_path[0]["loc"][-1]
        error = AipError(
            ErrorCode.NOT_FOUND,
            f"No resource has {name} {in_path[0]['input']!r}: ids are whole numbers from 1 to {MAX_ID}.",
        )
        return await _aip_error(request, error)
    problems = [f"{'.'.join(str(p) for p in err['loc'])}: {_explain(err)}" for err in exc.errors()]
    body = {"code": "INVALID_INPUT", "message": "; ".join(problems), "details": {"errors": problems}}
    return JSONResponse(body, status_code=422)


def _explain(error: Any) -> str:
    if error["type"] == "extra_forbidden":  # pydantic's "Extra inputs are not permitted" hides the likely typo
        return "unknown field; check its spelling (the API documentation at /docs lists the fields)"
    return str(error["msg"])


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own answers (no such route, method not allowed) in the platform's envelope."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        body = {"code": ErrorCode.NOT_FOUND, "message": f"No route {request.url.path}; the API is under {API_PREFIX}."}
        return JSONResponse(body, status_code=404)
    if exc.status_code == 405:
        allowed = responses.allowed_methods(request.app, request.url.path)
        message = f"{request.method} is not allowed on {request.url.path}; use {', '.join(allowed)}."
        return JSONResponse(
            {"code": ErrorCode.METHOD_NOT_ALLOWED, "message": message},
            status_code=405,
            headers={"Allow": ", ".join(allowed)},
        )
    if exc.status_code == 400:  # a body FastAPI cannot parse: invalid input like any other, one status for it
        message = f"The request body cannot be read ({exc.detail}); send JSON (or the form the operation documents)."
        return JSONResponse({"code": ErrorCode.INVALID_INPUT, "message": message}, status_code=422)
    code = ErrorCode.INVALID_INPUT if exc.status_code < 500 else ErrorCode.INTERNAL
    return JSONResponse({"code": code, "message": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


async def _unexpected_error(request: Request, _exc: Exception) -> JSONResponse:
    log.exception("Unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse({"code": "INTERNAL", "message": "Internal error; the server log has the details."}, 500)
