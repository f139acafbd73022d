"""One error type for the whole platform; the API maps its code to an HTTP status in one handler."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    CONFLICT = "CONFLICT"
    TOO_LARGE = "TOO_LARGE"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    RATE_LIMITED = "RATE_LIMITED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


HTTP_STATUS = {
    ErrorCode.INVALID_INPUT: 422,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}


class AipError(Exception):
    """An error with a code and a message that tells the user what to change."""

    def __init__(self, code: ErrorCode, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickles as cls(*args) with args == (message,), which breaks this signature: a raise inside a
        # Ray task would reach the caller as a TypeError. Rebuild from the fields instead (subclasses too).
        return _rebuild, (type(self), self.code, self.message, self.details), self.__dict__

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


def _rebuild(cls: type[AipError], code: ErrorCode, message: str, details: dict[str, Any]) -> AipError:
    error = cls.__new__(cls)
    AipError.__init__(error, code, message, **details)
    return error


def invalid(message: str, **details: Any) -> AipError:
    return AipError(ErrorCode.INVALID_INPUT, message, **details)


def not_found(kind: str, ident: object) -> AipError:
    return AipError(ErrorCode.NOT_FOUND, f"{kind} {ident} does not exist (or you cannot see it).")


@contextmanager
def hide_not_found(kind: str, ident: object) -> Iterator[None]:
    """A 404 for a row reached through the one asked for names the one asked for: the other row's id may be another
    user's, and telling it would say that it exists."""
    try:
        yield
    except AipError as e:
        if e.code is not ErrorCode.NOT_FOUND:
            raise
        raise not_found(kind, ident) from None


def too_large(message: str, **details: Any) -> AipError:
    return AipError(ErrorCode.TOO_LARGE, message, **details)


def forbidden(message: str, **details: Any) -> AipError:
    return AipError(ErrorCode.FORBIDDEN, message, **details)


def conflict(message: str, **details: Any) -> AipError:
    return AipError(ErrorCode.CONFLICT, message, **details)
