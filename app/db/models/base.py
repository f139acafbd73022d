"""The declarative base of the models, and the helpers every model module shares."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
)
from sqlalchemy.orm import DeclarativeBase

MAX_ID = 2**31 - 1  # ids are SQL INTEGER: 32 bits on PostgreSQL and MariaDB (64 on SQLite); larger ones fail there


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}
