"""The body-limit table and the id parameter, read from the app's own OpenAPI document (no platform needed)."""

from __future__ import annotations

from typing import Any

from app.api.limits import DEFAULT_LIMIT, ROUTE_LIMITS, BodyLimitMiddleware
from app.api.main import API_PREFIX, create_app
from app.core.config import Settings
from app.db.models import MAX_ID

APP = create_app()
PATHS: dict[str, dict[str, Any]] = APP.openapi()["paths"]


def test_every_route_limit_names_a_real_route_and_a_setting() -> None:
    middleware = BodyLimitMiddleware(APP, prefix=API_PREFIX)
    settings = Settings(data_dir="/tmp/aip-limits-test")
    for (method, template), limit in ROUTE_LIMITS.items():
        assert method.lower() in PATHS.get(API_PREFIX + template, {}), f"{method} {template} is not a route"
        path = API_PREFIX + template.replace("{upload_id}", "abc").replace("{index}", "3").replace("_id}", "")
        path = path.replace("{dataset", "7").replace("{deployment", "7")
        assert middleware.route_limit(method, path) is limit, path
        assert limit.limit(settings) >= getattr(settings, limit.setting)
    assert middleware.route_limit("POST", f"{API_PREFIX}/dataset") is DEFAULT_LIMIT
    assert middleware.route_limit("GET", f"{API_PREFIX}/training/code") is DEFAULT_LIMIT


def test_every_id_in_a_path_is_bounded_to_the_database_range() -> None:
    ids = unbounded = 0
    for path, operations in PATHS.items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                if param["in"] == "path" and param["schema"].get("type") == "integer":
                    ids += 1
                    if param["schema"].get("maximum") != MAX_ID or param["schema"].get("minimum") not in (0, 1):
                        unbounded += 1
                        print("unbounded:", method, path, param["name"])
    assert ids > 40 and unbounded == 0
