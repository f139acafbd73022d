"""Lists from the REST API: every list route answers one page (`items`, `total`, `limit`, `offset`); the SDK reads
one page when asked for a `limit`, else pages through all of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

MAX_PAGE = 500  # the API's largest page


class Page(list[dict[str, Any]]):
    """A list's items (a plain list), with `total`: how many match the filters, whatever page this is."""

    def __init__(self, items: Iterable[dict[str, Any]], *, total: int, limit: int, offset: int) -> None:
        super().__init__(items)
        self.total = total
        self.limit = limit
        self.offset = offset


def fetch(call: Callable[..., Any], path: str, params: dict[str, Any], *, limit: int | None, offset: int) -> Page:
    """One page of `limit` items from `offset` when `limit` is given, else every item from `offset` on."""
    query = {k: v for k, v in params.items() if v is not None}
    if limit is not None:
        body = call("GET", path, params={**query, "limit": limit, "offset": offset})
        return Page(body["items"], total=body["total"], limit=body["limit"], offset=body["offset"])
    items: list[dict[str, Any]] = []
    start = offset
    while True:
        body = call("GET", path, params={**query, "limit": MAX_PAGE, "offset": start})
        items.extend(body["items"])
        start += len(body["items"])
        # Rows added or deleted meanwhile shift later pages; the total of the last page read is told.
        if not body["items"] or start >= body["total"]:
            return Page(items, total=body["total"], limit=len(items), offset=offset)
