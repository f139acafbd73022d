"""One page of a query's rows: a bounded `limit` / `offset`, a sort on a whitelisted field, and the total.

Every list the API serves goes through `page`, so each answers in the same shape and none reads a whole table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func
from sqlalchemy.orm import Session

from app.core.errors import invalid

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class PageRequest:
    """`sort` names a field, `-field` for descending; which fields a list sorts by is the list's choice."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0
    sort: str | None = None


@dataclass(frozen=True)
class PageOf(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def page(
    session: Session,
    query: Select[Any],
    request: PageRequest,
    *,
    sortable: dict[str, Any],
    default_sort: str,
    tiebreak: Any,
) -> PageOf[Any]:
    """The rows of `query` (which selects one entity) in `request`'s order and window, and how many there are.

    Args:
        sortable: the fields a caller may sort by, by name, to their columns.
        default_sort: the sort when the request names none (e.g. "-id": newest first).
        tiebreak: a unique column ordered after the sort (in its direction), so pages neither repeat nor skip rows.

    Raises:
        AipError(INVALID_INPUT): a sort field the list does not offer, or a limit outside 1..MAX_LIMIT.
    """
    if not 1 <= request.limit <= MAX_LIMIT or request.offset < 0:
        raise invalid(f"Ask for 1 to {MAX_LIMIT} items (limit) from an offset of 0 or more.")
    sort = request.sort or default_sort
    descending = sort.startswith("-")
    field = sort.removeprefix("-")
    if field not in sortable:
        fields = ", ".join(sorted(sortable))
        raise invalid(f"Cannot sort by {field!r}: sort by one of {fields} (a '-' first: descending).")
    column, tie = sortable[field], tiebreak
    order = [column.desc(), tie.desc()] if descending else [column.asc(), tie.asc()]
    total = session.scalar(query.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)) or 0
    rows = session.scalars(query.order_by(*order).limit(request.limit).offset(request.offset))
    return PageOf(items=list(rows), total=total, limit=request.limit, offset=request.offset)
